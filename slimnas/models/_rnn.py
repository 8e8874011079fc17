"""The recurrent family: GRU/LSTM over the last input axis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import layer_count, positive_int


@dataclass(frozen=True)
class RNNSpec:
    """Recurrent network over the sequence axis (the last axis of a ``(C, L)`` input)."""

    family: ClassVar[str] = "rnn"
    cell: str = "gru"  # "gru" | "lstm"
    hidden: int = 32
    n_layers: int = 1
    bidirectional: bool = False


class RecurrentNet(nn.Module):
    """GRU/LSTM over the last axis; features are the channels (rows too, for 2-D inputs)."""

    def __init__(self, spec: RNNSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        n_features = 1
        for d in input_shape[:-1]:
            n_features *= d
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[spec.cell]
        self.rnn = rnn_cls(n_features, spec.hidden, num_layers=spec.n_layers, batch_first=True,
                           bidirectional=spec.bidirectional)
        self.bidirectional = spec.bidirectional
        self.classifier = nn.Linear(spec.hidden * (2 if spec.bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.flatten(1, -2).transpose(1, 2)  # (N, L, features)
        out, _ = self.rnn(seq)
        last = out[:, -1]
        if self.bidirectional:  # the backward direction has read the whole sequence at t=0
            # selected, not sliced: structured pruning traces the channels through a selection
            # (and the hidden size is read at run time, as pruning may narrow the layer)
            forward_half = torch.arange(out.shape[-1], device=out.device) < self.rnn.hidden_size
            last = torch.where(forward_half, last, out[:, 0])
        return self.classifier(last)


@register_family("rnn")
class RNNFamily(BaseFamily):
    spec = RNNSpec
    keys = {
        "cell": Key(str, "'gru' or 'lstm'", ["gru", "lstm"], lambda v: v in ("gru", "lstm")),
        "hidden": positive_int([16, 32, 64]),
        "n_layers": layer_count({"low": 1, "high": 2}),
        "bidirectional": Key(bool, "true/false", [False, True]),
    }

    def sample(self, draw) -> RNNSpec:
        return RNNSpec(cell=draw("cell"), hidden=draw("hidden"), n_layers=draw("n_layers"),
                       bidirectional=draw("bidirectional"))

    def build(self, spec: RNNSpec, input_shape, n_classes) -> nn.Module:
        return RecurrentNet(spec, tuple(input_shape), n_classes)

    def summary(self, spec: RNNSpec) -> str:
        """``gru 32x2 bi``: the cell, hidden size x layers, bidirectional."""
        return f"{spec.cell} {spec.hidden}x{spec.n_layers}" + (" bi" if spec.bidirectional else "")
