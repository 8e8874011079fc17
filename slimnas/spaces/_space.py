"""The search space: which families, their parameters, and the training recipe."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna

from slimnas.errors import ConfigError
from slimnas.spaces._families import SPACE_KEYS, grid_of, parse_family, sample_arch, sample_training
from slimnas.spaces._params import Param
from slimnas.spaces._spec import Candidate

FAMILIES = ("mlp", "cnn", "rnn")
MAX_GRID_POINTS = 100_000


@dataclass(frozen=True)
class SearchSpace:
    """What to search: architecture families with their parameters, and the training recipe.

    Example:
        >>> space = SearchSpace.from_config({"family": ["cnn"], "cnn": {"channels": [8, 16]}})
        >>> space.families
        ('cnn',)
    """

    families: tuple[str, ...]
    params: dict[str, dict[str, Param]] = field(hash=False)
    training: dict[str, Param] = field(hash=False)
    compression: object = None

    @classmethod
    def from_config(cls, raw: dict | None, training: dict | None = None, field_prefix: str = "space") -> SearchSpace:
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(field_prefix, "a mapping with 'family' and per-family parameters", raw)
        unknown = set(raw) - {"family", "compression", *FAMILIES}
        if unknown:
            raise ConfigError(f"{field_prefix}.{sorted(unknown)[0]}", f"one of 'family', 'compression', {', '.join(FAMILIES)}")
        fam = raw.get("family", ["cnn", "mlp"])
        fam = [fam] if isinstance(fam, str) else fam
        if not isinstance(fam, list) or not fam or any(f not in FAMILIES for f in fam):
            raise ConfigError(f"{field_prefix}.family", f"one or more of {list(FAMILIES)}", raw.get("family"))
        params = {f: parse_family(f, raw.get(f), f"{field_prefix}.{f}") for f in fam}
        compression = None
        if raw.get("compression") is not None:
            from slimnas.spaces._compression import CompressionSpace

            compression = CompressionSpace.from_config(raw["compression"], f"{field_prefix}.compression")
        return cls(
            families=tuple(dict.fromkeys(fam)),
            params=params,
            training=parse_family("training", training, "training"),
            compression=compression,
        )

    def to_config(self) -> tuple[dict, dict]:
        """``(space, training)`` mappings that :meth:`from_config` reads back."""
        space: dict = {"family": list(self.families)}
        for f in self.families:
            space[f] = {k: p.to_config() for k, p in self.params[f].items()}
        if self.compression is not None:
            space["compression"] = self.compression.to_config()
        return space, {k: p.to_config() for k, p in self.training.items()}

    def sample(self, trial: optuna.Trial, *, tie_layers: bool = False, input_shape: tuple[int, ...] | None = None,
               n_classes: int | None = None) -> Candidate:
        """Ask ``trial`` for one candidate (define-by-run); compression genes need the data's
        ``input_shape`` and ``n_classes`` to place per-layer genes."""
        family = self.families[0] if len(self.families) == 1 else trial.suggest_categorical("arch.family", list(self.families))
        arch = sample_arch(family, self.params[family], trial, tie_layers=tie_layers)
        compression, keep = None, 0.0
        if self.compression is not None:
            compression = self.compression.sample(trial, arch, input_shape, n_classes)
            keep = self.compression.sample_keep(trial)
        return Candidate(arch=arch, train=sample_training(self.training, trial), compression=compression,
                         keep_macs=keep)

    def grid(self) -> dict[str, list]:
        """Grid for Optuna's ``GridSampler`` (per-layer choices tied); errors past 100k points."""
        grid: dict[str, list] = {}
        if len(self.families) > 1:
            grid["arch.family"] = list(self.families)
        for f in self.families:
            grid.update(grid_of(f, self.params[f]))
        grid.update(grid_of("training", self.training))
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


assert set(SPACE_KEYS) >= set(FAMILIES)
