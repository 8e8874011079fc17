"""Compression genes: per-layer pruning ratios, precisions and ranks, clustering, distillation.

Declared under ``space.compression`` in a config. Per-layer genes are named by the layer's
position in forward order (``comp.prune_<i>``, ``comp.precision_<i>``, ``comp.rank_<i>``), so the
same gene means the same place in every architecture of a family, and a sampled
:class:`slimnas.compress.CompressionPolicy` maps them to the built model's module names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from slimnas.errors import ConfigError
from slimnas.spaces._families import Key, parse_keys
from slimnas.spaces._params import Param

COMPRESSION_KEYS: dict[str, Key] = {
    "prune": Key(float, "ratios in [0, 0.95]", {"low": 0.0, "high": 0.8}, lambda v: 0 <= v <= 0.95),
    "per_layer": Key(bool, "true/false", True),
    "keep_macs": Key(float, "0 (the ratios set how much is pruned) or shares of the parent's MACs in (0, 1]", [0.0],
                     lambda v: 0 <= v <= 1),
    "importance": Key(str, "'l1', 'l2', 'taylor', 'bn_scale' or 'random'", ["l1"],
                      lambda v: v in ("l1", "l2", "taylor", "bn_scale", "random")),
    "precision": Key(str, "'fp32', 'fp16' or 'int8'", ["fp32", "int8"], lambda v: v in ("fp32", "fp16", "int8")),
    "mixed_precision": Key(bool, "true/false", True),
    "lowrank": Key(float, "kept-rank ratios in (0, 1] (1 = not factorised)", [1.0], lambda v: 0 < v <= 1),
    "cluster": Key(int, "0 (off) or a cluster count >= 2", [0], lambda v: v == 0 or v >= 2),
    "distill": Key(bool, "true/false", [True]),
    "temperature": Key(float, "numbers > 0", [4.0], lambda v: v > 0),
    "finetune_lr": Key(float, "0 (the fine-tune recipe's, Adam 3e-3) or learning rates in (0, 10]", [0.0],
                       lambda v: 0 <= v <= 10),
    "finetune_epochs": Key(int, "integers >= 0", 2, lambda v: v >= 0),
    "final_epochs": Key(int, "integers >= 0", 10, lambda v: v >= 0),
}
_SCALARS = ("per_layer", "mixed_precision", "finetune_epochs", "final_epochs")


@dataclass(frozen=True)
class CompressionSpace:
    """What compression a search may apply to each candidate, and how long it fine-tunes.

    ``finetune_epochs`` is the short distilled fine-tune used to rank candidates; front members
    get ``final_epochs`` at the end.
    """

    params: dict[str, Param] = field(hash=False)

    @classmethod
    def from_config(cls, raw: dict | None, field_prefix: str = "space.compression") -> CompressionSpace:
        params = parse_keys(COMPRESSION_KEYS, raw, field_prefix)
        for name in _SCALARS:
            if not params[name].is_fixed:
                key = COMPRESSION_KEYS[name]
                raise ConfigError(f"{field_prefix}.{name}", f"a single value ({key.expected})", raw[name])
        return cls(params=params)

    def value(self, name: str):
        return self.params[name].values[0]

    def to_config(self) -> dict:
        return {k: p.to_config() for k, p in self.params.items()}

    def grid(self) -> dict[str, list]:
        raise ConfigError("strategy.name", "a strategy other than 'grid' for a space with per-layer compression genes",
                          "grid")

    def max_shrink(self) -> float:
        """The most a candidate may be shrunk in MACs: ``1 / min(keep_macs)`` (inf when a
        choice is 0, where the sampled ratios set the level)."""
        low = min(self.params["keep_macs"].choices())
        return 1 / low if low > 0 else float("inf")

    def sample_keep(self, trial: optuna.Trial) -> float:
        """The share of the parent's MACs to keep (0: the sampled ratios set the level)."""
        return float(self.params["keep_macs"].suggest(trial, "comp.keep_macs"))

    def sample(self, trial: optuna.Trial, arch, input_shape: tuple[int, ...], n_classes: int):
        """A :class:`~slimnas.compress.CompressionPolicy` for ``arch`` built on these shapes."""
        from slimnas.compress import CompressionPolicy
        from slimnas.compress._prune import executed_layers
        from slimnas.models import build_model

        layers = [n for n, _ in executed_layers(build_model(arch, input_shape, n_classes), input_shape)]
        prunable, p = layers[:-1], self.params
        per_layer = self.value("per_layer")

        def gene(name: str, i: int | None):
            return p[name].suggest(trial, f"comp.{name}" if i is None else f"comp.{name}_{i}")

        ratio_all = None if per_layer else gene("prune", None)
        prune = {n: float(gene("prune", i) if per_layer else ratio_all) for i, n in enumerate(prunable)}
        if self.value("mixed_precision"):
            precision = {n: gene("precision", i) for i, n in enumerate(layers)}
        else:
            one = gene("precision", None)
            precision = dict.fromkeys(layers, one)
        rank = {n: float(gene("lowrank", i)) for i, n in enumerate(layers)}
        return CompressionPolicy(
            prune={k: v for k, v in prune.items() if v > 0},
            importance=gene("importance", None),
            precision=precision,
            lowrank={k: v for k, v in rank.items() if v < 1},
            cluster=int(gene("cluster", None)),
            distill=bool(gene("distill", None)),
            temperature=float(gene("temperature", None)),
            finetune_lr=float(gene("finetune_lr", None)),
        )
