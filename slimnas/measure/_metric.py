"""Metrics: what objectives optimise and budgets limit, by one set of names.

A metric is a registered class (:func:`register_metric`): its name, the key it has in a
metrics dict, its direction, its unit and the suffixes a budget may use, when it is known
(``model``: from the built model before training; ``trained``: from the trained model, its
exported file and the validation data), and how it is measured from a :class:`MeasureContext`.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from slimnas.config import MeasureSettings
from slimnas.errors import ConfigError
from slimnas.measure._format import fmt_count
from slimnas.registry import Registry
from slimnas.tasks._base import MEASURED_NAMES

COUNT_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
BYTE_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "kib": 1024, "mib": 1024**2}
MS_UNITS = {"": 1, "ms": 1, "us": 1e-3, "s": 1e3}
PLAIN_UNITS = {"": 1}


@dataclass
class MeasureContext:
    """What a metric may read about one candidate.

    Attributes:
        model: the eager model (trained, unless the metric is known before training).
        input_shape: one sample's shape.
        onnx: the exported file (path or bytes), once there is one.
        data: the dataset splits (validation data only during a search).
        settings: the run's :class:`~slimnas.config.MeasureSettings` (``runtime``,
            ``latency_batch``, ``latency_repeats``, ``threads``, the fitness weights; a mapping
            of them is read into one).
        metrics: what is measured so far; a metric already in it is not measured again.
    """

    model: nn.Module | None = None
    input_shape: tuple[int, ...] = ()
    onnx: str | Path | bytes | None = None
    data: Any = None
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settings = MeasureSettings.of(self.settings)


class BaseMetric(abc.ABC):
    """One metric.

    Call order: the run resolves objective and budget names with :func:`get_metric`; a trial
    calls :meth:`measure` for each metric it needs, ``model`` metrics first (before training,
    so budgets on them can skip training), ``trained`` ones after. :meth:`measure` returns the
    value; a metric that needs something the context lacks raises :class:`ConfigError`.
    """

    name: ClassVar[str] = ""
    #: key in a trial's metrics dict (default: the name)
    key: ClassVar[str] = ""
    direction: ClassVar[str] = "minimize"  # or "maximize"
    unit: ClassVar[str] = ""
    #: budget suffixes -> multiplier (``bytes<=8KB``)
    units: ClassVar[dict[str, float]] = PLAIN_UNITS
    #: "model": known from the built model before training; "trained": after training
    when: ClassVar[str] = "trained"
    description: ClassVar[str] = ""
    #: the short label tables and reports show for its key (default: its name, with its unit
    #: unless a count, bytes or a fraction); a ``val_`` key's label starting with ``val`` also
    #: names its test-split twin (``val acc`` -> ``test acc`` for ``test_accuracy``)
    label: ClassVar[str] = ""

    @abc.abstractmethod
    def measure(self, ctx: MeasureContext) -> float:
        """The metric's value for the candidate ``ctx`` describes."""

    def known_before_training(self, settings: dict) -> bool:
        """Whether the metric can be measured on the built, untrained model under these
        settings (``when == "model"``; a latency predicted from a table is too)."""
        return self.when == "model"

    def format(self, value: float) -> str:
        """The value as a table shows it."""
        if self.unit in ("count", "bytes"):
            return fmt_count(value)
        return f"{value:.3f}"


METRICS: Registry[type[BaseMetric]] = Registry("metric")
#: names accepted for a metric under another one (``latency`` was the objective's old name)
ALIASES: dict[str, str] = {}
#: the metrics of tasks (``r2``, ``mean_ap``, a user task's own), measured on validation data
#: by the run's task (:mod:`slimnas.measure._task_metrics`); objectives and budgets take them
#: beside the registered ones, but only a run of that task measures them
TASK_METRICS: dict[str, type[BaseMetric]] = {}


def _known(name: str) -> bool:
    return name in METRICS or name in TASK_METRICS


def _class(name: str) -> type[BaseMetric]:
    return METRICS.get(name) if name in METRICS or name not in TASK_METRICS else TASK_METRICS[name]


def register_metric(name: str, *, aliases: Sequence[str] = ()) -> Callable[[type[BaseMetric]], type[BaseMetric]]:
    """Class decorator: register a :class:`BaseMetric` under ``name`` (objectives and budgets
    then accept it).

    Example:
        >>> @register_metric("energy_mj")  # doctest: +SKIP
        ... class Energy(BaseMetric):
        ...     unit, units = "mJ", {"": 1, "mj": 1, "j": 1e3}
        ...     def measure(self, ctx): return 2e-6 * ctx.metrics["macs"]
    """

    def decorator(cls: type[BaseMetric]) -> type[BaseMetric]:
        METRICS.register_class(name)(cls)
        cls.key = cls.key or name
        for alias in aliases:
            ALIASES[alias] = name
        return cls

    return decorator


def list_metrics() -> list[str]:
    return METRICS.names()


MEASURED_NAMES.append(list_metrics)  # the task layer names them (a task metric must not take one)


def get_metric(name: str, field: str = "metric") -> BaseMetric:
    """The metric called ``name`` (or one of its aliases)."""
    name = ALIASES.get(name, name)
    if not _known(name):
        raise ConfigError(field, f"metrics from {list_metrics()}", name)
    return _class(name)()


def metric_label(key: str) -> str:
    """A short label for a metrics key, from the metric registry: the metric's own ``label``
    (``val_accuracy`` -> ``val acc``), a test-split twin's (``test_accuracy`` -> ``test acc``),
    else a registered metric's name (with its unit), else the key in words."""
    labelled = {cls.key or name: cls.label for name, cls in [*((n, METRICS.get(n)) for n in METRICS.names()),
                                                              *TASK_METRICS.items()] if cls.label}
    if key in labelled:
        return labelled[key]
    twin = "val_" + key.removeprefix("test_")
    if key.startswith("test_") and labelled.get(twin, "").startswith("val"):
        return "test" + labelled[twin].removeprefix("val")
    try:
        metric = get_metric(key)
    except ConfigError:  # not a metric's name: the key itself
        return key.replace("_", " ")
    return f"{metric.name} {metric.unit}".strip() if metric.unit not in ("count", "bytes", "fraction") else metric.name


def measure_metrics(names: Sequence[str], ctx: MeasureContext) -> dict[str, float]:
    """Measure each metric of ``names`` not yet in ``ctx.metrics`` (in order; later metrics
    see earlier ones); returns ``ctx.metrics``."""
    for name in names:
        metric = get_metric(name)
        if metric.key in ctx.metrics:
            continue
        try:
            value = metric.measure(ctx)
            ctx.metrics[metric.key] = value if isinstance(value, int) and not isinstance(value, bool) else float(value)
        except (KeyError, AttributeError, TypeError) as e:  # the context lacks what the metric reads
            raise ConfigError(f"metric.{metric.name}", "a candidate with what this metric measures",
                              f"{type(e).__name__}: {e}") from None
    return ctx.metrics


def parse_objectives(raw, field: str = "objectives") -> tuple[str, ...]:
    """Objective names (a list or a comma-separated string), each a registered metric once."""
    names = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(field, f"a list of objectives from {list_metrics()}", raw)
    for n in names:
        if not _known(ALIASES.get(n, n)):
            raise ConfigError(field, f"objectives from {list_metrics()}", n)
    canonical = [ALIASES.get(n, n) for n in names]
    if len(set(canonical)) != len(canonical):
        raise ConfigError(field, "each objective once", raw)
    if "fitness" in canonical and len(canonical) > 1:
        raise ConfigError(field, "'fitness' alone (it already folds the cost into one number)", raw)
    return tuple(canonical)


_PATTERN = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-z%]*)\s*$", re.I)


@dataclass(frozen=True)
class Budget:
    """One hard constraint on a measured metric; ``relative`` limits are fractions of a reference."""

    metric: str
    op: str
    limit: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str, field: str = "budget") -> Budget:
        """Parse ``macs<=20000``, ``params<=2k``, ``bytes<=8KB``, ``latency_ms<=0.5``, ``macs<=50%``."""
        if not isinstance(text, str):
            raise ConfigError(field, "a string like 'macs<=20000'", text)
        m = _PATTERN.match(text)
        if not m:
            raise ConfigError(field, "'<metric><=<value>[unit]' such as 'macs<=20000' or 'bytes<=8KB'", text)
        name, op, value, unit = m.group(1).lower(), m.group(2), float(m.group(3)), m.group(4).lower()
        name = ALIASES.get(name, name)
        if not _known(name):
            raise ConfigError(field, f"a metric from {list_metrics()}", text)
        if unit == "%":
            budget = cls(name, op, value / 100.0, relative=True)
        else:
            units = _class(name).units
            if unit not in units:
                raise ConfigError(field, f"a unit from {sorted(u for u in units if u) or ['none']} for {name}", text)
            budget = cls(name, op, value * units[unit])
        if not math.isfinite(budget.limit):  # 'macs<=1e999' would be saved as inf, which nothing reads back
            raise ConfigError(field, "a finite limit such as 'macs<=20000' or 'bytes<=8KB'", text)
        return budget

    def resolve(self, reference: dict[str, float]) -> Budget:
        """An absolute budget: relative limits multiplied by the reference's value."""
        if not self.relative:
            return self
        value = reference[self.key]
        if value <= 0:  # a share of zero or of a negative figure (an R² below 0) bounds nothing sensible
            raise ConfigError("--budget", f"an absolute limit on {self.metric} (the input model's is {value:.4g}: a "
                              f"share of it means nothing; e.g. '{self.metric}{self.op}0.3')", str(self))
        return Budget(self.metric, self.op, self.limit * value)

    @property
    def key(self) -> str:
        return _class(self.metric).key

    def violation(self, metrics: dict[str, float]) -> float:
        """<= 0 when met (Optuna's constraint convention), else how far it is missed."""
        value = metrics[self.key]
        return value - self.limit if self.op in ("<=", "<") else self.limit - value

    def is_met(self, metrics: dict[str, float]) -> bool:
        if self.key not in metrics:
            return True
        v = self.violation(metrics)
        return v < 0 if self.op in ("<", ">") else v <= 0

    def __str__(self) -> str:
        if self.relative:
            return f"{self.metric}{self.op}{self.limit * 100:.12g}%"
        return f"{self.metric}{self.op}{self.limit:.12g}"


def signed(metrics: dict, objectives: Sequence[str]) -> list[float]:
    """Objective values turned into 'smaller is better' (missing or NaN: +inf)."""
    out = []
    for name in objectives:
        metric = get_metric(name)
        v = float(metrics.get(metric.key, math.nan))
        v = math.inf if math.isnan(v) else v
        out.append(-v if metric.direction == "maximize" else v)
    return out
