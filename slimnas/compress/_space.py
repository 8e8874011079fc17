"""Compression genes of a joint search (``space.compression`` in a config).

Every registered compressor declares its genes (:attr:`BaseCompressor.genes`); this space adds
the retraining genes every step shares. Per-layer genes are named by the layer's position in
forward order (``comp.prune_<i>``, ``comp.precision_<i>``, ``comp.lowrank_<i>``), so the same
gene means the same place in every architecture of a family. A sample is a
:class:`~slimnas.compress.CompressionPolicy` whose steps come in the registry's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from slimnas.compress._base import WEIGHTED, Gene
from slimnas.compress._prune import executed_layers, prunable_layers
from slimnas.errors import ConfigError
from slimnas.models import build_model
from slimnas.spaces import Key, Param
from slimnas.spaces._params import parse_keys
from slimnas.spaces._policy import COMPRESSORS, CompressionPolicy, list_compressors

#: genes every step shares: how a candidate is retrained and how far it may be shrunk
RETRAIN_GENES: dict[str, Gene] = {
    "keep_macs": Gene(Key(float, "0 (the ratios set how much is pruned) or shares of the parent's MACs in (0, 1]",
                          [0.0], lambda v: 0 <= v <= 1)),
    "distill": Gene(Key(bool, "true/false", [True])),
    "temperature": Gene(Key(float, "numbers > 0", [4.0], lambda v: v > 0)),
    "finetune_lr": Gene(Key(float, "0 (the fine-tune recipe's, Adam 3e-3) or learning rates in (0, 10]", [0.0],
                            lambda v: 0 <= v <= 10)),
    "finetune_epochs": Gene(Key(int, "integers >= 0", 2, lambda v: v >= 0), fixed=True),
    "final_epochs": Gene(Key(int, "integers >= 0", 10, lambda v: v >= 0), fixed=True),
    "rerank_layers": Gene(Key(int, "integers >= 0", 2, lambda v: v >= 0), fixed=True),
}


def all_genes() -> dict[str, tuple[str | None, Gene]]:
    """``name -> (compressor or None for the shared genes, gene)``, in registry order."""
    out: dict[str, tuple[str | None, Gene]] = {}
    for name in list_compressors():
        for key, gene in COMPRESSORS.get(name).genes.items():
            if key in out or key in RETRAIN_GENES:
                raise ConfigError(f"compression.{name}", f"genes named apart from the other compressors' ({key!r})")
            out[key] = (name, gene)
    out.update({k: (None, g) for k, g in RETRAIN_GENES.items()})
    return out


@dataclass(frozen=True)
class CompressionSpace:
    """What compression a search may apply to each candidate, and how long it fine-tunes.

    ``finetune_epochs`` is the short distilled fine-tune used to rank candidates; front members
    get ``final_epochs`` at the end. Before the front is chosen, the candidates in the first
    ``rerank_layers`` Pareto layers by the short fine-tune get the full one, and the front is
    chosen among them by their validation figures after it (0: the front by the short fine-tune).
    """

    params: dict[str, Param] = field(hash=False)

    @classmethod
    def from_config(cls, raw: dict | None, field_prefix: str = "space.compression") -> CompressionSpace:
        genes = all_genes()
        params = parse_keys({k: g.key for k, (_, g) in genes.items()}, raw, field_prefix)
        for name, (_, gene) in genes.items():
            if gene.fixed and not params[name].is_fixed:
                raise ConfigError(f"{field_prefix}.{name}", f"a single value ({gene.key.expected})", raw[name])
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

    def sample(self, trial: optuna.Trial, arch, input_shape: tuple[int, ...], n_classes: int) -> tuple[CompressionPolicy, float]:
        """``(policy, keep_macs)`` for ``arch`` built on these shapes.

        Per-layer genes are drawn first (compressor by compressor, in the registry's order),
        then each compressor's single genes, then the shared retraining genes, then
        ``keep_macs``: the share of the parent's MACs to keep (0: the sampled ratios set the level).
        """
        model = build_model(arch, input_shape, n_classes)
        executed = executed_layers(model, input_shape)
        layers = [n for n, _ in executed]
        scopes = {"all": layers, "prunable": [n for n, _ in prunable_layers(model, input_shape)],
                  "weighted": [n for n, m in executed if isinstance(m, WEIGHTED)]}
        genes, p = all_genes(), self.params
        values: dict[str, object] = {}

        def draw(name: str, i: int | None = None):
            return p[name].suggest(trial, f"comp.{name}" if i is None else f"comp.{name}_{i}")

        for name, (_, gene) in genes.items():  # per-layer genes
            if gene.layers is None:
                continue
            names = scopes[gene.layers]
            if gene.tied_by is not None and not self.value(gene.tied_by):
                values[name] = dict.fromkeys(names, draw(name))
            else:
                values[name] = {n: draw(name, i) for i, n in enumerate(names)}
        for name, (owner, gene) in genes.items():  # single genes of the compressors
            if gene.layers is None and owner is not None and not gene.fixed:
                values[name] = draw(name)
        steps = {}
        for compressor in list_compressors():
            mine = {k: values.get(k, self.value(k) if p[k].is_fixed else None)
                    for k, (owner, _) in genes.items() if owner == compressor}
            options = COMPRESSORS.get(compressor).options_from_genes(mine) if mine else None
            if options is not None:
                steps[compressor] = options
        policy = CompressionPolicy.of(**steps, distill=bool(draw("distill")), temperature=float(draw("temperature")),
                                      finetune_lr=float(draw("finetune_lr")))
        return policy, float(draw("keep_macs"))
