"""String-keyed layer factories: configs say ``"relu"``, builders get ``nn.ReLU``."""

from __future__ import annotations

from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._tokens import Positions
from slimnas.spaces import Key

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hardswish": nn.Hardswish,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


#: the ``activation`` config key every family that takes one uses
ACTIVATION_KEY = Key(str, f"activations from {sorted(ACTIVATIONS)}", ["relu"], lambda v: v in ACTIVATIONS)


def make_activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def conv_ndim(input_shape: tuple[int, ...], family: str) -> int:
    """The convolutions' dimensionality for inputs shaped ``(C, L)`` (1) or ``(C, H, W)`` (2); a
    one-line :class:`ConfigError` naming ``family`` for any other shape."""
    ndim = len(input_shape) - 1
    if ndim not in (1, 2):
        raise ConfigError("space.family", f"inputs shaped (C, L) or (C, H, W) for {family!r}", f"input {input_shape}")
    return ndim


def conv_cls(ndim: int) -> type[nn.Module]:
    return {1: nn.Conv1d, 2: nn.Conv2d}[ndim]


def bn_cls(ndim: int) -> type[nn.Module]:
    return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[ndim]


def pool_cls(kind: str, ndim: int) -> type[nn.Module]:
    return {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}[
        (kind, ndim)
    ]


class LowRank(nn.Sequential):
    """The factors that replace one layer after low-rank factorisation (a marker type, so saved
    structures can be rebuilt and per-layer settings reach every factor)."""


def pooled_head(ndim: int, dropout: float, in_ch: int, n_classes: int,
                per_token: bool = False) -> tuple[nn.Module, nn.Module, nn.Linear]:
    """Global average pooling (1-D or 2-D) with flatten, optional dropout, and the classifier:
    the head the residual and inverted-residual families share. ``per_token``: no pooling, the
    features turned to ``(N, L, C)`` so the classifier predicts at every position."""
    pool = Positions() if per_token else nn.Sequential(
        nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return pool, (nn.Dropout(dropout) if dropout > 0 else nn.Identity()), nn.Linear(in_ch, n_classes)
