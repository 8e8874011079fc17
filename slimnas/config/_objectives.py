"""Objectives: what a search optimises, each a metric with a direction."""

from __future__ import annotations

from dataclasses import dataclass

from slimnas.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    name: str
    key: str
    direction: str  # "maximize" | "minimize"


OBJECTIVES = {
    "accuracy": Objective("accuracy", "val_accuracy", "maximize"),
    "loss": Objective("loss", "val_loss", "minimize"),
    "params": Objective("params", "params", "minimize"),
    "macs": Objective("macs", "macs", "minimize"),
    "bytes": Objective("bytes", "bytes", "minimize"),
    "latency": Objective("latency", "latency_ms", "minimize"),
    # f = val_loss + lambda * cost, the classic scalarised NAS fitness
    "fitness": Objective("fitness", "fitness", "minimize"),
}
COST_METRICS = ("params", "macs", "bytes", "latency_ms")


def parse_objectives(raw, field: str = "objectives") -> tuple[str, ...]:
    names = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(field, f"a list of objectives from {sorted(OBJECTIVES)}", raw)
    for n in names:
        if n not in OBJECTIVES:
            raise ConfigError(field, f"objectives from {sorted(OBJECTIVES)}", n)
    if len(set(names)) != len(names):
        raise ConfigError(field, "each objective once", raw)
    if "fitness" in names and len(names) > 1:
        raise ConfigError(field, "'fitness' alone (it already folds the cost into one number)", raw)
    return tuple(names)
