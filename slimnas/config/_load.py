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
    "threads": "threads",
    "amp": "training.amp",
    "accumulate": "training.accumulate",
    "task": "task",
    "reevaluate": "reevaluate",
}


#: what a YAML file the project reads may hold: its size, how deep it nests, and how many
#: values it holds once every alias is expanded (an alias "bomb" is refused before expansion)
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


def read_yaml(path: str | Path, *, max_bytes: int = MAX_YAML_BYTES, max_values: int = MAX_YAML_NODES) -> dict[str, Any]:
    """A YAML file's mapping (``{}`` for an empty file); a file that is not such a mapping, or
    past the limits (above, or larger ones a caller reading bigger files passes), is a one-line
    :class:`ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config", "an existing YAML file", str(path))
    if path.stat().st_size > max_bytes:
        raise ConfigError("config", f"a YAML file of at most {max_bytes / 2**20:g} MiB",
                          f"{path}: {path.stat().st_size:,} bytes")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError("config", "a YAML text file (UTF-8)", f"{path}: not text (byte {e.start})") from None
    try:
        _check_shape(text, path, max_values)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("config", f"valid YAML{where}", str(path)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("config", "a YAML mapping of settings", f"{path}: {type(raw).__name__}")
    return raw


def _check_shape(text: str, path: Path, max_values: int) -> None:
    """Refuse YAML nested deeper than :data:`MAX_YAML_DEPTH` or holding more than
    ``max_values`` values with its aliases expanded, from the parser's events alone
    (nothing is composed or expanded yet); an alias inside its own anchor is refused too."""
    sizes: dict[str, int] = {}  # anchor -> values under it, aliases expanded
    stack: list[list] = [[None, 0]]  # open collections: [anchor, values so far]
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise ConfigError("config", "YAML whose aliases refer to finished anchors (no alias inside "
                                  "its own anchor)", f"{path}: *{event.anchor}")
            stack[-1][1] += sizes[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            stack[-1][1] += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 0])
            if len(stack) - 1 > MAX_YAML_DEPTH:
                raise ConfigError("config", f"YAML nested at most {MAX_YAML_DEPTH} levels deep", str(path))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, n = stack.pop()
            stack[-1][1] += n + 1
            if anchor is not None:
                sizes[anchor] = n + 1
        else:
            continue
        if stack[-1][1] > max_values:
            raise ConfigError("config", f"YAML of at most {max_values:,} values with its aliases expanded "
                              "(an alias 'bomb' is refused before it is expanded)", str(path))


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
