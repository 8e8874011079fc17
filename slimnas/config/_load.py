"""YAML in, validated config out: the only place that reads YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from slimnas._files import atomic_write
from slimnas.config._schema import RunConfig, parse_config
from slimnas.errors import ConfigError

#: CLI/API override name -> dotted config key
OVERRIDES = {
    "dataset": "data.dataset",
    "strategy": "strategy.name",
    "early_stopping": "strategy.early_stopping",
    "n_trials": "n_trials",
    "epochs": "epochs",
    "seed": "seed",
    "storage": "storage",
    "out": "out",
    "name": "name",
    "objectives": "objectives",
    "budget": "budget",
    "timeout": "timeout",
    "trial_timeout": "trial_timeout",
    "label_column": "data.label_column",
    "device": "device",
    "workers": "n_workers",
    "tensorboard": "tensorboard",
    "device_profile": "device_profile",
}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", "an existing YAML file", str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("config", f"valid YAML{where}", str(path)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("config", "a YAML mapping of settings", f"{path}: {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Read an optional YAML file, apply overrides (``dataset=``, ``n_trials=``, ...), validate.

    Example:
        >>> load_config(dataset="digits", n_trials=5).data.dataset
        'digits'
    """
    raw = read_yaml(path) if path is not None else {}
    if raw.get("storage") and raw.get("storage") == f"sqlite:///{Path(str(raw.get('out'))) / 'study.db'}":
        del raw["storage"]  # a run's saved config (older ones name their default storage): reproduce into --out
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in OVERRIDES:
            raise TypeError(f"unknown override {name!r}; expected one of {sorted(OVERRIDES)}")
        *parents, leaf = OVERRIDES[name].split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else node
        if name == "budget" and isinstance(value, (list, tuple)):
            value = list(value)
        node[leaf] = value
    return parse_config(raw)


def save_config(config: RunConfig | dict, path: str | Path) -> None:
    """Write a config (or its resolved mapping) as YAML."""
    data = config.to_dict() if isinstance(config, RunConfig) else config
    atomic_write(path, yaml.safe_dump(data, sort_keys=False))
