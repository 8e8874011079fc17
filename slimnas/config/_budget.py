"""Budgets: hard constraints such as ``macs<=20000``, ``bytes<=8KB`` or ``macs<=50%``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from slimnas.errors import ConfigError

#: metric name -> (key in a metrics dict, unit kind)
BUDGET_METRICS = {
    "params": "count",
    "macs": "count",
    "bytes": "bytes",
    "latency_ms": "ms",
    "accuracy": "fraction",
}
_UNITS = {
    "count": {"": 1, "k": 1e3, "m": 1e6, "g": 1e9},
    "bytes": {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "kib": 1024, "mib": 1024**2},
    "ms": {"": 1, "ms": 1, "us": 1e-3, "s": 1e3},
    "fraction": {"": 1},
}
_PATTERN = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*([a-z%]*)\s*$", re.I)


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
        metric, op, value, unit = m.group(1).lower(), m.group(2), float(m.group(3)), m.group(4).lower()
        if metric not in BUDGET_METRICS:
            raise ConfigError(field, f"a metric from {sorted(BUDGET_METRICS)}", text)
        if unit == "%":
            return cls(metric, op, value / 100.0, relative=True)
        units = _UNITS[BUDGET_METRICS[metric]]
        if unit not in units:
            raise ConfigError(field, f"a unit from {sorted(u for u in units if u) or ['none']} for {metric}", text)
        return cls(metric, op, value * units[unit])

    def resolve(self, reference: dict[str, float]) -> Budget:
        """An absolute budget: relative limits multiplied by ``reference[metric]``."""
        if not self.relative:
            return self
        return Budget(self.metric, self.op, self.limit * reference[self.metric])

    @property
    def key(self) -> str:
        return "val_accuracy" if self.metric == "accuracy" else self.metric

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
            return f"{self.metric}{self.op}{self.limit * 100:g}%"
        return f"{self.metric}{self.op}{self.limit:g}"
