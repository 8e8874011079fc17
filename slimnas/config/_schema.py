"""The run configuration: typed, validated once, saved with the run so it can be reproduced."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimnas.config._budget import Budget
from slimnas.config._objectives import COST_METRICS, parse_objectives
from slimnas.errors import ConfigError
from slimnas.spaces import SearchSpace
from slimnas.strategies import list_strategies

PRUNERS = ("none", "median", "hyperband")
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist1d"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    label_column: str = "label"


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "tpe"
    pruner: str = "none"  # early stopping of weak trials from per-epoch validation reports
    n_startup_trials: int = 5  # random trials before a model-based strategy takes over
    population_size: int = 20  # nsga2


@dataclass(frozen=True)
class FitnessConfig:
    cost: str = "macs"
    weight: float = 1e-5  # lambda in f = val_loss + lambda * cost


@dataclass(frozen=True)
class MeasureConfig:
    runtime: str = "onnxruntime"  # latency runtime: onnxruntime | torch
    latency_batch: int = 1
    latency_repeats: int = 50
    threads: int = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything a search needs; ``slimnas search config.yaml`` reads one from YAML."""

    name: str | None = None
    seed: int = 0
    n_trials: int = 20
    timeout: float | None = None  # seconds of search; the front so far is kept
    epochs: int | None = None  # overrides the training recipe's epochs
    device: str = "cpu"
    n_workers: int = 1  # processes on the same study (each with seed + k); scale out further with a shared storage
    threads: int = 1  # PyTorch CPU threads for training; 0 keeps PyTorch's default (tiny models run best on 1)
    out: str | None = None
    storage: str | None = None
    objectives: tuple[str, ...] = ("accuracy", "macs")
    budget: tuple[Budget, ...] = ()
    skip_infeasible: bool = True  # don't train candidates whose params/MACs already break the budget
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    space: SearchSpace = field(default_factory=lambda: SearchSpace.from_config(None))

    @property
    def study_name(self) -> str:
        return self.name or f"{Path(self.data.dataset).stem}-{self.strategy.name}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.study_name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.run_dir / 'study.db'}"

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`parse_config` reads back into an equal config."""
        space, training = self.space.to_config()
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("data", "strategy", "fitness", "measure", "space", "budget", "objectives")
        }
        out["name"] = self.study_name
        out["out"] = str(self.run_dir)
        out["storage"] = self.storage_url
        out["objectives"] = list(self.objectives)
        out["budget"] = [str(b) for b in self.budget]
        for sub in ("data", "strategy", "fitness", "measure"):
            out[sub] = dataclasses.asdict(getattr(self, sub))
        out["space"], out["training"] = space, training
        return out


def _section(cls, raw: Any, field_name: str, checks: dict[str, tuple[str, Any]]):
    """Build a small frozen dataclass from a mapping, checking types and values per field."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(field_name, "a mapping", raw)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(names)
    if unknown:
        raise ConfigError(f"{field_name}.{sorted(unknown)[0]}", f"one of the keys {sorted(names)}")
    values = {}
    for name, value in raw.items():
        expected, check = checks.get(name, ("a value", lambda v: True))
        if not check(value):
            raise ConfigError(f"{field_name}.{name}", expected, value)
        values[name] = value
    return cls(**values)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw mapping (from YAML plus CLI overrides) into a :class:`RunConfig`.

    Raises:
        ConfigError: naming the first field that is wrong and what it expects.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config", "a mapping of settings", type(raw).__name__)
    top = {f.name for f in dataclasses.fields(RunConfig)} | {"training"}
    unknown = set(raw) - top
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"one of the keys {sorted(top)}")
    scalar_checks: dict[str, tuple[str, Any]] = {
        "name": ("a string", lambda v: v is None or (isinstance(v, str) and v and "/" not in v)),
        "seed": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
        "n_trials": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
        "timeout": ("a number of seconds > 0", lambda v: v is None or (_is_num(v) and v > 0)),
        "epochs": ("an integer >= 1", lambda v: v is None or (_is_int(v) and v >= 1)),
        "device": (f"one of {list(DEVICES)}", lambda v: v in DEVICES),
        "threads": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
        "n_workers": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
        "out": ("a folder path", lambda v: v is None or isinstance(v, str)),
        "storage": ("an Optuna storage URL such as sqlite:///runs/x.db", lambda v: v is None or (isinstance(v, str) and "://" in v)),
        "skip_infeasible": ("true/false", lambda v: isinstance(v, bool)),
    }
    values: dict[str, Any] = {}
    for key, (expected, check) in scalar_checks.items():
        if key in raw:
            if not check(raw[key]):
                raise ConfigError(key, expected, raw[key])
            values[key] = raw[key]
    if "objectives" in raw:
        values["objectives"] = parse_objectives(raw["objectives"])
    budget = raw.get("budget") or []
    budget = [budget] if isinstance(budget, str) else budget
    if not isinstance(budget, list):
        raise ConfigError("budget", "a list of constraints like 'macs<=20000'", budget)
    values["budget"] = tuple(Budget.parse(b, "budget") for b in budget)
    if any(b.relative for b in values["budget"]):
        raise ConfigError("budget", "absolute limits for a search (relative '%' budgets need an input model)", [str(b) for b in values["budget"]])
    values["data"] = _section(DataConfig, raw.get("data"), "data", {
        "dataset": ("a dataset name or a .npz/.csv path", lambda v: isinstance(v, str) and v),
        "val_fraction": ("a number in (0, 0.9]", lambda v: _is_num(v) and 0 < v <= 0.9),
        "test_fraction": ("a number in (0, 0.9]", lambda v: _is_num(v) and 0 < v <= 0.9),
        "seed": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
        "label_column": ("a column name", lambda v: isinstance(v, str)),
    })
    values["strategy"] = _section(StrategyConfig, raw.get("strategy"), "strategy", {
        "name": (f"one of {list_strategies()}", lambda v: v in list_strategies()),
        "pruner": (f"one of {list(PRUNERS)}", lambda v: v in PRUNERS),
        "n_startup_trials": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
        "population_size": ("an integer >= 2", lambda v: _is_int(v) and v >= 2),
    })
    values["fitness"] = _section(FitnessConfig, raw.get("fitness"), "fitness", {
        "cost": (f"one of {list(COST_METRICS)}", lambda v: v in COST_METRICS),
        "weight": ("a number >= 0", lambda v: _is_num(v) and v >= 0),
    })
    values["measure"] = _section(MeasureConfig, raw.get("measure"), "measure", {
        "runtime": ("'onnxruntime' or 'torch'", lambda v: v in ("onnxruntime", "torch")),
        "latency_batch": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
        "latency_repeats": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
        "threads": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    })
    values["space"] = SearchSpace.from_config(raw.get("space"), raw.get("training"))
    config = RunConfig(**values)
    objectives = config.objectives
    if config.strategy.name == "cmaes" and len(objectives) > 1:
        raise ConfigError("strategy.name", "a single objective for 'cmaes' (use 'nsga2', 'tpe' or 'gp' for several)", "cmaes")
    return config
