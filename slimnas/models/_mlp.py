"""The MLP family: fully connected layers on the flattened input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.models._layers import ACTIVATION_KEY, make_activation
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import DROPOUT, layer_count, positive_int


@dataclass(frozen=True)
class MLPSpec:
    """Fully connected network on the flattened input."""

    family: ClassVar[str] = "mlp"
    widths: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False


class MLP(nn.Module):
    def __init__(self, spec: MLPSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = 1
        for d in input_shape:
            n_in *= d
        for width in spec.widths:
            layers.append(nn.Linear(n_in, width))
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(make_activation(spec.activation))
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            n_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(n_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_family("mlp")
class MLPFamily(BaseFamily):
    spec = MLPSpec
    no_per_token = ("an MLP per position reads no context, one over the flattened sequence reads later "
                    "tokens and fixes the length")
    keys = {
        "n_layers": layer_count({"low": 1, "high": 3}),
        "width": positive_int([16, 32, 64, 128]),
        "activation": ACTIVATION_KEY,
        "dropout": DROPOUT,
        "batch_norm": Key(bool, "true/false", [False]),
    }

    def sample(self, draw) -> MLPSpec:
        n = draw("n_layers")
        return MLPSpec(widths=tuple(draw("width", i) for i in range(n)), activation=draw("activation"),
                       dropout=draw("dropout"), batch_norm=draw("batch_norm"))

    def build(self, spec: MLPSpec, input_shape, n_classes) -> nn.Module:
        return MLP(spec, tuple(input_shape), n_classes)

    def summary(self, spec: MLPSpec) -> str:
        """``mlp 64-32 relu``: the hidden widths and the activation."""
        return f"mlp {'-'.join(map(str, spec.widths))} {spec.activation}"

    def supernet(self, params, input_shape, n_classes, *, fixed=None, kernel_transform=False,
                 field="strategy.options.fixed"):
        from slimnas.models._supernets import mlp_supernet  # the supernet module builds on this one

        return mlp_supernet(params, tuple(input_shape), n_classes, fixed=fixed, field=field)
