"""The search space: which families, their parameters, the training recipe, and (optionally)
the compression genes, which the compression toolkit declares and samples."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna

from slimnas.config._schema import MAX_EPOCHS
from slimnas.errors import ConfigError
from slimnas.spaces._family import FAMILIES, get_family, list_families, sample_arch
from slimnas.spaces._params import Key, Param, grid_of, parse_keys
from slimnas.spaces._policy import CompressionPolicy
from slimnas.spaces._spec import Candidate, TrainSpec

MAX_GRID_POINTS = 100_000
DEFAULT_FAMILIES = ["cnn", "mlp"]

TRAINING_KEYS: dict[str, Key] = {
    "optimizer": Key(str, "'adam', 'adamw' or 'sgd'", ["adam", "adamw"], lambda v: v in ("adam", "adamw", "sgd")),
    "lr": Key(float, "numbers in (0, 10]", {"low": 1e-3, "high": 3e-2, "log": True}, lambda v: 0 < v <= 10),
    "weight_decay": Key(float, "numbers >= 0", 0.0, lambda v: v >= 0),
    "batch_size": Key(int, "integers >= 1", [128], lambda v: v >= 1),
    "epochs": Key(int, f"integers in 1..{MAX_EPOCHS:,}", 20, lambda v: 1 <= v <= MAX_EPOCHS),
    "schedule": Key(str, "'cosine' or 'constant'", "cosine", lambda v: v in ("cosine", "constant")),
    "accumulate": Key(int, "integers >= 1", 1, lambda v: v >= 1),
    "amp": Key(bool, "true/false", False),
}


class CompressionGenes(Protocol):
    """What the space asks of ``space.compression`` (built by :mod:`slimnas.compress`)."""

    def sample(self, trial: optuna.Trial, arch: Any, input_shape: tuple[int, ...],
               n_classes: int) -> tuple[CompressionPolicy, float]:
        """``(policy, keep_macs)`` for ``arch`` on these shapes."""

    def grid(self) -> dict[str, list]: ...

    def to_config(self) -> dict: ...


def sample_training(params: dict[str, Param], trial: optuna.Trial) -> TrainSpec:
    return TrainSpec(**{key: params[key].suggest(trial, f"train.{key}") for key in TRAINING_KEYS})


@dataclass(frozen=True)
class SearchSpace:
    """What to search: architecture families with their parameters, the training recipe and
    the compression genes.

    Example:
        >>> space = SearchSpace.from_config({"family": ["cnn"], "cnn": {"channels": [8, 16]}})
        >>> space.families
        ('cnn',)
    """

    families: tuple[str, ...]
    params: dict[str, dict[str, Param]] = field(hash=False)
    training: dict[str, Param] = field(hash=False)
    compression: CompressionGenes | None = None

    @classmethod
    def from_config(cls, raw: dict | None, training: dict | None = None, field_prefix: str = "space", *,
                    compression: Callable[[dict, str], CompressionGenes] | None = None) -> SearchSpace:
        """Validate ``space`` and ``training`` config sections. ``compression(raw, field)``
        parses a ``compression`` section (see :func:`slimnas.compress.CompressionSpace`)."""
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(field_prefix, "a mapping with 'family' and per-family parameters", raw)
        names = list_families()
        unknown = set(raw) - {"family", "compression", *names}
        if unknown:
            raise ConfigError(f"{field_prefix}.{sorted(unknown)[0]}", f"one of 'family', 'compression', {', '.join(names)}")
        fam = raw.get("family", DEFAULT_FAMILIES)
        fam = [fam] if isinstance(fam, str) else fam
        if not isinstance(fam, list) or not fam or any(f not in FAMILIES for f in fam):
            raise ConfigError(f"{field_prefix}.family", f"one or more of {names}", raw.get("family"))
        params = {f: parse_keys(get_family(f).keys, raw.get(f), f"{field_prefix}.{f}") for f in fam}
        for f in fam:
            get_family(f).check(params[f], f"{field_prefix}.{f}")
        genes = None
        if raw.get("compression") is not None:
            if compression is None:
                raise ConfigError(f"{field_prefix}.compression", "a search that compresses its candidates "
                                  "(slimnas.search reads this section)")
            genes = compression(raw["compression"], f"{field_prefix}.compression")
        return cls(families=tuple(dict.fromkeys(fam)), params=params,
                   training=parse_keys(TRAINING_KEYS, training, "training"), compression=genes)

    def to_config(self) -> tuple[dict, dict]:
        """``(space, training)`` mappings that :meth:`from_config` reads back."""
        space: dict = {"family": list(self.families)}
        for f in self.families:
            space[f] = {k: p.to_config() for k, p in self.params[f].items()}
        if self.compression is not None:
            space["compression"] = self.compression.to_config()
        return space, {k: p.to_config() for k, p in self.training.items()}

    def sample(self, trial: optuna.Trial, *, tie_layers: bool = False, input_shape: tuple[int, ...] | None = None,
               n_classes: int | None = None, adapt: Callable[[Any], Any] | None = None) -> Candidate:
        """Ask ``trial`` for one candidate (define-by-run); compression genes need the data's
        ``input_shape`` and ``n_classes`` to place per-layer genes, and the architecture as it is
        built: ``adapt`` gives it from the sampled one (the data's vocabulary, a per-token head)."""
        family = self.families[0] if len(self.families) == 1 else trial.suggest_categorical("arch.family", list(self.families))
        arch = sample_arch(family, self.params[family], trial, tie_layers=tie_layers)
        if adapt is not None:
            arch = adapt(arch)
        compression, keep = None, 0.0
        if self.compression is not None:
            compression, keep = self.compression.sample(trial, arch, input_shape, n_classes)
        return Candidate(arch=arch, train=sample_training(self.training, trial), compression=compression,
                         keep_macs=keep)

    def grid(self) -> dict[str, list]:
        """Grid for Optuna's ``GridSampler`` (per-layer choices tied); errors past 100k points."""
        grid: dict[str, list] = {}
        if len(self.families) > 1:
            grid["arch.family"] = list(self.families)
        for f in self.families:
            grid.update(grid_of(f, self.params[f]))
        grid.update(grid_of("train", self.training))
        if self.compression is not None:
            grid.update(self.compression.grid())
        size = math.prod(len(v) for v in grid.values())
        if size > MAX_GRID_POINTS:
            raise ConfigError(
                "strategy.name",
                f"a space of at most {MAX_GRID_POINTS} points for 'grid' (this one has {size}); "
                "narrow the choices or use 'random'",
                "grid",
            )
        return grid

    @property
    def max_epochs(self) -> int:
        return int(self.training["epochs"].max())
