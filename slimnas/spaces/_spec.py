"""Frozen, JSON-round-trippable values a strategy proposes: the training recipe and the candidate."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from slimnas.spaces._family import arch_from_dict, arch_to_dict
from slimnas.spaces._policy import CompressionPolicy


@dataclass(frozen=True)
class TrainSpec:
    """The training recipe of one candidate."""

    optimizer: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 20
    schedule: str = "cosine"  # "cosine" | "constant"
    accumulate: int = 1  # micro-batches of batch_size per optimizer step (gradient accumulation)
    amp: bool = False  # mixed precision (float16 autocast, loss scaling) where training runs on CUDA
    warmup: float = 0.0  # share of the steps over which the learning rate rises linearly from 1% of lr

    def to_dict(self) -> dict:
        """The recipe as JSON; settings added since the first version are left out at their
        defaults, so recipes (and the trained parents keyed by them) read as they always did."""
        out = dataclasses.asdict(self)
        for key, default in (("accumulate", 1), ("amp", False), ("warmup", 0.0)):
            if out[key] == default:
                del out[key]
        return out


@dataclass(frozen=True)
class Candidate:
    """One point of the search: an architecture, its training recipe and (optionally) a
    compression policy, all plain values.

    ``compression`` is the :class:`~slimnas.compress.CompressionPolicy` (its JSON mapping in
    :meth:`to_dict`, parsed once in :meth:`from_dict`); ``keep_macs`` (0 = off) is the share of the trained parent's MACs the
    compressed candidate keeps: the policy's pruning ratios then give only the shape, and are
    scaled to that level.
    """

    arch: Any
    train: TrainSpec = field(default_factory=TrainSpec)
    compression: CompressionPolicy | None = field(default=None, hash=False)
    keep_macs: float = 0.0

    def to_dict(self) -> dict:
        out = {"arch": arch_to_dict(self.arch), "train": self.train.to_dict()}
        if self.compression is not None:
            out["compression"] = self.compression.to_dict()
        if self.keep_macs:
            out["keep_macs"] = self.keep_macs
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Candidate:
        return cls(arch=arch_from_dict(d["arch"]), train=TrainSpec(**d.get("train", {})),
                   compression=None if d.get("compression") is None else CompressionPolicy.from_dict(d["compression"]),
                   keep_macs=float(d.get("keep_macs", 0.0)))
