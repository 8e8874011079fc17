"""Frozen, hashable, JSON-round-trippable specs: what a strategy proposes and a builder builds."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class MLPSpec:
    """Fully connected network on the flattened input."""

    family: ClassVar[str] = "mlp"
    widths: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    batch_norm: bool = False


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: ``channels`` out, square ``kernel``, 'same'-style padding."""

    channels: int
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    pool: str = "none"  # "none" | "max" | "avg": a 2-wide pooling after the layer


@dataclass(frozen=True)
class CNNSpec:
    """Convolutional network for 1-D (``(C, L)``) or 2-D (``(C, H, W)``) inputs."""

    family: ClassVar[str] = "cnn"
    layers: tuple[ConvLayer, ...]
    activation: str = "relu"
    batch_norm: bool = True
    residual: bool = False  # skip around each layer; a 1x1 projection where the shape changes
    head: str = "gap"  # "gap": global average pooling; "flatten": flatten all positions
    dropout: float = 0.0


@dataclass(frozen=True)
class RNNSpec:
    """Recurrent network over the sequence axis (the last axis of a ``(C, L)`` input)."""

    family: ClassVar[str] = "rnn"
    cell: str = "gru"  # "gru" | "lstm"
    hidden: int = 32
    n_layers: int = 1
    bidirectional: bool = False


ArchSpec = MLPSpec | CNNSpec | RNNSpec
_FAMILIES: dict[str, type] = {c.family: c for c in (MLPSpec, CNNSpec, RNNSpec)}


@dataclass(frozen=True)
class TrainSpec:
    """The training recipe of one candidate."""

    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 20
    schedule: str = "cosine"  # "cosine" | "constant"


@dataclass(frozen=True)
class Candidate:
    """One point of the search: an architecture, its training recipe and (optionally) a
    compression policy, all plain frozen values.

    ``keep_macs`` (0 = off) is the share of the trained parent's MACs the compressed candidate
    keeps: the policy's pruning ratios then give only the shape, and are scaled to that level.
    """

    arch: ArchSpec
    train: TrainSpec = field(default_factory=TrainSpec)
    compression: Any = None
    keep_macs: float = 0.0

    def to_dict(self) -> dict:
        out = {"arch": arch_to_dict(self.arch), "train": dataclasses.asdict(self.train)}
        if self.compression is not None:
            out["compression"] = self.compression.to_dict()
        if self.keep_macs:
            out["keep_macs"] = self.keep_macs
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Candidate:
        compression = None
        if d.get("compression") is not None:
            from slimnas.compress import CompressionPolicy

            compression = CompressionPolicy.from_dict(d["compression"])
        return cls(arch=arch_from_dict(d["arch"]), train=TrainSpec(**d.get("train", {})), compression=compression,
                   keep_macs=float(d.get("keep_macs", 0.0)))


def arch_to_dict(spec: ArchSpec) -> dict:
    """``{"family": ..., **fields}``, with tuples as lists (JSON-ready)."""
    return {"family": spec.family, **json.loads(json.dumps(dataclasses.asdict(spec)))}


def arch_from_dict(d: dict) -> ArchSpec:
    """Inverse of :func:`arch_to_dict`."""
    d = dict(d)
    family = d.pop("family")
    cls = _FAMILIES[family]
    if cls is CNNSpec:
        d["layers"] = tuple(ConvLayer(**layer) for layer in d["layers"])
    if cls is MLPSpec:
        d["widths"] = tuple(d["widths"])
    return cls(**d)
