"""Compression policies: the value a compression search proposes and a user writes (a
candidate's ``compression``, so it sits below every layer that reads one).

A :class:`CompressionPolicy` is an ordered list of steps, each naming a registered compressor
(:func:`~slimnas.compress.register_compressor`, into :data:`COMPRESSORS` here) with its constructor arguments, plus how every
step that changes weights is retrained (distillation from the uncompressed model, the fine-tune
learning rate). :func:`~slimnas.compress.apply_policy` runs it; nothing else spells out which
compressors exist or in which order they run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from slimnas.errors import ConfigError
from slimnas.registry import Registry

#: compressor name -> class (a :class:`slimnas.compress.BaseCompressor` subclass); filled by
#: :func:`slimnas.compress.register_compressor`
COMPRESSORS: Registry = Registry("compression.step")


def list_compressors() -> list[str]:
    """Registered compressors in the order a policy runs them."""
    return sorted(COMPRESSORS.names(), key=lambda n: (COMPRESSORS.get(n).order, n))

SETTINGS = ("distill", "temperature", "alpha", "finetune_lr")


def _canonical(value: Any) -> Any:
    """JSON-ready, with mappings sorted by key (so equal options compare and hash equal)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class PolicyStep:
    """One step: a registered compressor's name and its constructor arguments (JSON values)."""

    compressor: str
    options: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"compression.{self.compressor}", "a mapping of options", self.options)
        object.__setattr__(self, "options", _canonical(dict(self.options)))

    def __hash__(self) -> int:
        return hash((self.compressor, json.dumps(self.options, sort_keys=True)))

    def build(self, retrain=None):
        """The compressor this step describes (validated; errors name ``compression.<step>...``)."""
        if self.compressor not in COMPRESSORS:
            raise ConfigError(f"compression.{self.compressor}", f"a compressor from {list_compressors()}")
        cls = COMPRESSORS.get(self.compressor)
        step = cls.from_options(self.options, retrain=retrain, field=f"compression.{self.compressor}")
        try:
            step.validate()
        except ConfigError as e:
            if e.field.startswith("compression."):
                raise
            raise ConfigError(f"compression.{e.field}", e.expected, e.got) from None
        return step


@dataclass(frozen=True)
class CompressionPolicy:
    """What to do to a model, step by step, and how to retrain after each step.

    Attributes:
        steps: the steps, run in this order; the one that writes the file (quantization) last.
        distill: distil from the uncompressed model in every retraining step.
        temperature, alpha: distillation temperature and soft-loss weight.
        finetune_lr: learning rate of every retraining step; 0 keeps the fine-tune recipe's.

    Example:
        >>> p = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"0": 0.5}},
        ...                          quantize={"mode": "int8"}, distill=True)
        >>> [s.compressor for s in p.steps]
        ['prune', 'quantize']
        >>> CompressionPolicy.from_dict(p.to_dict()) == p
        True
    """

    steps: tuple[PolicyStep, ...] = ()
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.9
    finetune_lr: float = 0.0

    def __post_init__(self) -> None:
        steps = tuple(s if isinstance(s, PolicyStep) else PolicyStep(*s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        names = [s.compressor for s in steps]
        if len(set(names)) != len(names):
            raise ConfigError("compression.steps", "each compressor at most once", names)
        for step in steps:
            step.build()  # unknown compressor, option or value: one line naming it
        writers = [i for i, s in enumerate(steps) if COMPRESSORS.get(s.compressor).writes_file]
        if writers and writers[-1] != len(steps) - 1:
            raise ConfigError("compression.steps", f"{names[writers[-1]]!r} last (it writes the file)", names)
        if not isinstance(self.distill, bool):
            raise ConfigError("compression.distill", "true/false", self.distill)
        if not self.temperature > 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("compression.temperature/alpha", "temperature > 0 and alpha in [0, 1]",
                              (self.temperature, self.alpha))
        if not 0 <= self.finetune_lr <= 10:
            raise ConfigError("compression.finetune_lr", "0 (the recipe's) or a learning rate in (0, 10]",
                              self.finetune_lr)

    @classmethod
    def of(cls, **kwargs: Any) -> CompressionPolicy:
        """A policy from ``compressor=options`` keywords, run in the registry's order; the
        settings (``distill``, ``temperature``, ``alpha``, ``finetune_lr``) are keywords too."""
        settings = {k: kwargs.pop(k) for k in SETTINGS if k in kwargs}
        unknown = set(kwargs) - set(COMPRESSORS.names())
        if unknown:
            raise ConfigError(f"compression.{sorted(unknown)[0]}", f"a compressor from {list_compressors()}")
        order = list_compressors()
        steps = tuple(PolicyStep(n, kwargs[n]) for n in sorted(kwargs, key=order.index) if kwargs[n] is not None)
        return cls(steps=steps, **settings)

    def step(self, compressor: str) -> PolicyStep | None:
        return next((s for s in self.steps if s.compressor == compressor), None)

    def options(self, compressor: str) -> dict:
        """The options of ``compressor``'s step (empty when the policy has none)."""
        step = self.step(compressor)
        return dict(step.options) if step is not None else {}

    def with_step(self, compressor: str, options: dict) -> CompressionPolicy:
        """A copy with ``compressor``'s options replaced (the step added in registry order)."""
        steps = {s.compressor: s.options for s in self.steps}
        steps[compressor] = options
        order = list_compressors()
        kept = [s.compressor for s in self.steps]
        names = kept if compressor in kept else sorted([*kept, compressor], key=order.index)
        return replace(self, steps=tuple(PolicyStep(n, steps[n]) for n in names))

    def to_dict(self) -> dict:
        return {"steps": [{"compressor": s.compressor, "options": s.options} for s in self.steps],
                **{k: getattr(self, k) for k in SETTINGS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> CompressionPolicy:
        if not isinstance(d, Mapping):
            raise ConfigError("compression", "a mapping with 'steps' and retraining settings", d)
        if "steps" not in d and set(d) & set(LEGACY):
            return from_legacy(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"compression.{sorted(unknown)[0]}", f"one of the keys {sorted(known)}")
        steps = []
        for i, s in enumerate(d.get("steps", [])):
            if not isinstance(s, Mapping) or set(s) - {"compressor", "options"} or "compressor" not in s:
                raise ConfigError(f"compression.steps.{i}", "{compressor: <name>, options: {...}}", s)
            steps.append(PolicyStep(s["compressor"], s.get("options", {})))
        return cls(**{**d, "steps": tuple(steps)})


#: keys of policies written before policies were lists of steps (run folders still hold them)
LEGACY = ("prune", "importance", "precision", "default_precision", "lowrank", "cluster")


def from_legacy(d: Mapping) -> CompressionPolicy:
    """Read a policy of the earlier fixed form (``prune``, ``precision``, ``lowrank``, ``cluster``)."""
    prune, precision, lowrank = (dict(d.get(k) or {}) for k in ("prune", "precision", "lowrank"))
    steps: dict[str, dict | None] = {
        "prune": {"ratio": 0.0, "importance": d.get("importance", "l1"), "layer_ratios": prune},
        "lowrank": {"layer_ratios": lowrank} if lowrank else None,
        "cluster": {"n_clusters": d["cluster"]} if d.get("cluster") else None,
        "quantize": {"mode": d.get("default_precision", "fp32"), "layer_precision": precision},
    }
    return CompressionPolicy.of(**steps, **{k: d[k] for k in SETTINGS if k in d})
