"""The recurrent family: GRU/LSTM over the last input axis.

Token ids (text: ``vocab_size > 0``, which a search on text data sets) are embedded first, as
wide as the hidden state. A per-token head (``per_token``, which a search of a per-token task
sets) classifies the recurrent output at every position; a ``causal`` one reads one direction
only (a bidirectional layer would read the future)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._tokens import check_id_inputs, check_per_token, embed_ids
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
    vocab_size: int = 0  # > 0: inputs are token ids below it, embedded (a search on text sets it)
    #: "": the last position's output; "tokens" / "causal": one per position (slimnas.models._tokens)
    per_token: str = ""


class RecurrentNet(nn.Module):
    """GRU/LSTM over the last axis; features are the channels (rows too, for 2-D inputs)."""

    def __init__(self, spec: RNNSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.per_token = check_per_token(spec.per_token, "rnn")
        if self.per_token == "causal" and spec.bidirectional:
            raise ConfigError("space.rnn.bidirectional", "false with a causal per-token head (the backward "
                              "direction reads later positions)", True)
        self.embed: nn.Embedding | None = None
        if spec.vocab_size > 0:
            input_shape = (spec.hidden, check_id_inputs(input_shape, spec.vocab_size, "rnn"))
            self.embed = nn.Embedding(spec.vocab_size, spec.hidden)
        n_features = 1
        for d in input_shape[:-1]:
            n_features *= d
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[spec.cell]
        self.rnn = rnn_cls(n_features, spec.hidden, num_layers=spec.n_layers, batch_first=True,
                           bidirectional=spec.bidirectional)
        self.bidirectional = spec.bidirectional
        self.classifier = nn.Linear(spec.hidden * (2 if spec.bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = embed_ids(self.embed, x) if self.embed is not None else x.flatten(1, -2).transpose(1, 2)
        out, _ = self.rnn(seq)  # (N, L, features)
        if self.per_token:  # (N, L, outputs): one prediction per position
            return self.classifier(out)
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
    data_kinds = ("tabular", "sequence", "image", "text")
    optional_fields = ("vocab_size", "per_token")  # set for text and per-token tasks only
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

    def per_token(self, spec: RNNSpec, mode: str) -> RNNSpec:
        """A causal head reads one direction only."""
        return dataclasses.replace(spec, per_token=mode, bidirectional=spec.bidirectional and mode != "causal")

    def summary(self, spec: RNNSpec) -> str:
        """``gru 32x2 bi``: the cell, hidden size x layers, bidirectional, a per-token head
        (``tokens`` or ``causal``) and the vocabulary of token-id inputs."""
        return (f"{spec.cell} {spec.hidden}x{spec.n_layers}" + (" bi" if spec.bidirectional else "")
                + (f" {spec.per_token}" if spec.per_token else "") + (f" vocab{spec.vocab_size}" if spec.vocab_size else ""))
