"""The run configuration: plain, typed values checked once, saved with the run.

Names that plug-ins extend (strategies, metrics, families, compressors, datasets) are plain
strings here; the layer that owns each registry resolves them (``slimnas.study`` does it for a
search, before anything is written or trained).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimnas.config._names import DEFAULT_RUNTIME
from slimnas.errors import ConfigError

DEVICES = ("cpu", "cuda", "auto")
#: upper bounds checked at validation, so a hostile or mistyped config is refused in one line
#: instead of hanging or exhausting memory (NumPy's seeds stop at 2**32 - 1; seeds get offsets)
MAX_SEED = 2**31 - 1
MAX_EPOCHS = 100_000
MAX_THREADS = 1024
MAX_WORKERS = 256
MAX_LATENCY_REPEATS = 10_000
MAX_LATENCY_BATCH = 65_536
MAX_TRIALS = 1_000_000
MAX_POPULATION = 100_000


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section. The fields after ``label_column`` came later: a saved config lists
    them only where they differ from their defaults, so older runs resume as they were."""

    dataset: str = "mnist1d"  # a built-in name, a .npz (x, y[, x_test, y_test]) or .csv file, or a folder
    val_fraction: float = 0.2  # carved from the training data; every search decision uses it
    test_fraction: float = 0.2  # only for sources without a test split
    seed: int = 0  # seed of the splits (kept fixed across searches)
    label_column: str = "label"  # CSV label column, or several joined by commas (CLI --label-column)
    layout: str | None = None  # 4-D arrays in a file: nchw | nhwc (None: nchw, a clearly NHWC array refused)
    normalize: str = "auto"  # auto | feature | channel | global | none (statistics from the training split)
    augment: dict = field(default_factory=dict, hash=False)  # training batches only: crop, flip, shift, noise
    text_column: str | None = None  # text CSV: the column of texts (None: the one non-numeric column)
    tokenizer: Any = "word"  # a registered tokenizer name, or {name: word, max_length: 64, ...}
    stream: Any = "auto"  # true: read samples from disk per batch; auto: for files over 1 GiB
    num_workers: int = 2  # DataLoader worker processes when streaming
    input_layout: str = "channels_first"  # what the model takes: channels_first | channels_last | no_channel
    options: dict = field(default_factory=dict, hash=False)  # a built-in dataset's or format's own options


#: DataConfig fields a saved config leaves out while they hold their defaults
DATA_EXTRAS = ("layout", "normalize", "augment", "text_column", "tokenizer", "stream", "num_workers",
               "input_layout", "options")
NORMALIZE = ("auto", "feature", "channel", "global", "none")


def data_to_dict(data: DataConfig) -> dict[str, Any]:
    """The ``data:`` section as a saved config holds it (new fields only when set)."""
    out = dataclasses.asdict(data)
    default = DataConfig()
    for key in DATA_EXTRAS:
        if out[key] == getattr(default, key):
            del out[key]
    return out


@dataclass(frozen=True)
class StrategyConfig:
    name: str = "tpe"  # a registered strategy (the registered names are listed below)
    early_stopping: str = "none"  # stops weak trials from per-epoch validation reports
    n_startup_trials: int = 5  # random trials before a model-based strategy takes over
    population_size: int = 20  # nsga2, evolution
    options: dict = field(default_factory=dict, hash=False)  # the strategy's own settings (it checks them)


@dataclass(frozen=True)
class FitnessConfig:
    cost: str = "macs"  # the metric objectives: [fitness] adds to the validation loss
    weight: float = 1e-5  # lambda in f = val_loss + lambda * cost


@dataclass(frozen=True)
class MeasureConfig:
    runtime: str = DEFAULT_RUNTIME  # latency runtime: onnxruntime | torch
    latency_batch: int = 1  # batch size latency is timed at
    latency_repeats: int = 50  # timed calls; latency_ms is their median
    threads: int = 1  # runtime threads latency is timed with


@dataclass(frozen=True)
class RunConfig:
    """Everything a search needs; ``slimnas search config.yaml`` reads one from YAML.

    ``space`` and ``training`` are the raw sections (the search space checks them); objectives
    and budgets are metric names and constraint strings (the metric registry checks them).
    """

    name: str | None = None  # study name (default <dataset>-<strategy>); the folder runs/<name>
    seed: int = 0  # seeds the strategy and every trial's training: same seed, same trials
    n_trials: int = 20  # total trials of the study (CLI --n-trials); a resumed study runs the missing ones
    timeout: float | None = None  # seconds of search; the front so far is kept
    trial_timeout: float | None = None  # seconds one trial may take; a slower one fails, the search goes on
    epochs: int | None = None  # overrides the training recipe's epochs
    device: str = "cpu"  # where trials train: cpu | cuda | auto
    n_workers: int = 1  # processes on the same study (each with seed + k); scale out further with a shared storage
    threads: int = 1  # PyTorch CPU threads for training; 0 keeps PyTorch's default (tiny models run best on 1)
    out: str | None = None  # run folder (default runs/<name>)
    storage: str | None = None  # Optuna storage URL (default sqlite:///<out>/study.db)
    objectives: tuple[str, ...] = ("accuracy", "macs")  # metric names, or [fitness]
    budget: tuple[str, ...] = ()  # hard constraints such as "macs<=20000", "bytes<=8KB"
    skip_infeasible: bool = True  # don't train candidates whose params/MACs already break the budget
    tensorboard: bool = False  # also write TensorBoard event files under <run folder>/tensorboard
    device_profile: str | None = None  # a device profile (YAML path or built-in name) the run targets
    task: str | None = None  # classification | regression | multilabel | file.py:callable (None: the dataset's own)
    reevaluate: int = 0  # re-evaluate the K leading candidates on other seeds, best chosen on means (--benchmark only for now)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    space: dict = field(default_factory=dict, hash=False)
    training: dict = field(default_factory=dict, hash=False)

    @property
    def study_name(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9._-]", "_", f"{Path(self.data.dataset).stem}-{self.strategy.name}")

    @property
    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / self.study_name

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.run_dir / 'study.db'}"

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`parse_config` reads back into an equal config."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        # the default storage is not written: a saved config reproduces into its new --out folder
        out.update(name=self.study_name, out=str(self.run_dir), storage=self.storage,
                   objectives=list(self.objectives), budget=list(self.budget))
        for sub in ("strategy", "fitness", "measure"):
            out[sub] = dataclasses.asdict(getattr(self, sub))
        out["data"] = data_to_dict(self.data)
        if not out["strategy"]["options"]:
            del out["strategy"]["options"]  # written only where a strategy is given settings
        out["space"], out["training"] = dict(self.space), dict(self.training)
        if self.device_profile is None:
            del out["device_profile"]  # written only when a run targets a device
        if self.task is None:
            del out["task"]  # written only when given: the dataset's own task otherwise
        if not self.reevaluate:
            del out["reevaluate"]  # written only when set
        return out


def _section(cls, raw: Any, field_name: str, checks: dict[str, tuple[str, Any]], aliases: dict | None = None):
    """Build a small frozen dataclass from a mapping, checking types and values per field."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(field_name, "a mapping", raw)
    raw = {(aliases or {}).get(k, k): v for k, v in raw.items()}
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


def _is_finite(v: Any) -> bool:
    return _is_num(v) and math.isfinite(v)


def _int_in(low: int, high: int, optional: bool = False) -> tuple[str, Any]:
    """``(expected, check)`` of an integer in ``low..high`` (or ``None`` where ``optional``)."""
    if optional:
        expected, check = _int_in(low, high)
        return expected, lambda v: v is None or check(v)
    return f"an integer in {low}..{high:,}", lambda v: _is_int(v) and low <= v <= high


def _is_name(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _is_study_name(v: Any) -> bool:
    """A study name is also a folder name under runs/: no separators, no '.' or '..'."""
    return isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", v) is not None


#: the ``data`` section's fields: what each must be
DATA_CHECKS: dict[str, tuple[str, Any]] = {
    "dataset": ("a dataset name or a .npz/.csv path", _is_name),
    "val_fraction": ("a number in (0, 0.9]", lambda v: _is_num(v) and 0 < v <= 0.9),
    "test_fraction": ("a number in (0, 0.9]", lambda v: _is_num(v) and 0 < v <= 0.9),
    "seed": _int_in(0, MAX_SEED),
    "label_column": ("a column name", lambda v: isinstance(v, str)),
    "layout": ("nchw or nhwc, in any case (how a file's 4-D image array is laid out)",
               lambda v: v is None or (isinstance(v, str) and v.lower() in ("nchw", "nhwc"))),
    "normalize": (f"one of {list(NORMALIZE)}", lambda v: v in NORMALIZE),
    "augment": ("a mapping such as {crop: 4, flip: true} or {shift: 2, noise: 0.05}",
                lambda v: isinstance(v, dict)),
    "text_column": ("a column name", lambda v: v is None or _is_name(v)),
    "tokenizer": ("a tokenizer name, or a mapping {name: word, max_length: 64, ...}",
                  lambda v: _is_name(v) or (isinstance(v, dict) and _is_name(v.get("name", "word")))),
    "stream": ("true, false or auto", lambda v: isinstance(v, bool) or v == "auto"),
    "num_workers": _int_in(0, MAX_WORKERS),
    "input_layout": ("channels_first, channels_last or no_channel", _is_name),
    "options": ("a mapping of the dataset's options, such as {n: 2000}", lambda v: isinstance(v, dict)),
}


def parse_data(raw: Any) -> DataConfig:
    """The ``data`` section, checked field by field (:class:`ConfigError` naming the field)."""
    return _section(DataConfig, raw, "data", DATA_CHECKS)


def parse_config(raw: dict[str, Any]) -> RunConfig:
    """Check a raw mapping (from YAML plus CLI overrides) into a :class:`RunConfig`.

    Raises:
        ConfigError: naming the first field that is wrong and what it expects.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config", "a mapping of settings", type(raw).__name__)
    top = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(raw) - top
    if unknown:
        raise ConfigError(sorted(unknown)[0], f"one of the keys {sorted(top)}")
    scalar_checks: dict[str, tuple[str, Any]] = {
        "name": ("a name of letters, digits, '.', '_' or '-' (no path)", lambda v: v is None or _is_study_name(v)),
        "seed": _int_in(0, MAX_SEED),
        "n_trials": _int_in(1, MAX_TRIALS),
        "timeout": ("a finite number of seconds > 0", lambda v: v is None or (_is_finite(v) and v > 0)),
        "trial_timeout": ("a finite number of seconds > 0", lambda v: v is None or (_is_finite(v) and v > 0)),
        "epochs": _int_in(1, MAX_EPOCHS, optional=True),
        "device": (f"one of {list(DEVICES)}", lambda v: v in DEVICES),
        "threads": _int_in(0, MAX_THREADS),
        "n_workers": _int_in(1, MAX_WORKERS),
        "out": ("a folder path", lambda v: v is None or isinstance(v, str)),
        "storage": ("an Optuna storage URL such as sqlite:///runs/x.db", lambda v: v is None or (isinstance(v, str) and "://" in v)),
        "skip_infeasible": ("true/false", lambda v: isinstance(v, bool)),
        "tensorboard": ("true/false", lambda v: isinstance(v, bool)),
        "device_profile": ("a device profile: a YAML path or a built-in name such as 'mcu'",
                           lambda v: v is None or _is_name(v)),
        "task": ("a task name such as 'regression', or 'path/to/file.py:callable'", lambda v: v is None or _is_name(v)),
        "reevaluate": _int_in(0, MAX_TRIALS),
    }
    values: dict[str, Any] = {}
    for key, (expected, check) in scalar_checks.items():
        if key in raw:
            if not check(raw[key]):
                raise ConfigError(key, expected, raw[key])
            values[key] = raw[key]
    if "objectives" in raw:
        objectives = raw["objectives"]
        objectives = [s.strip() for s in objectives.split(",")] if isinstance(objectives, str) else objectives
        if not isinstance(objectives, list) or not objectives or not all(_is_name(o) for o in objectives):
            raise ConfigError("objectives", "a list of metric names such as [accuracy, macs]", raw["objectives"])
        values["objectives"] = tuple(objectives)
    budget = raw.get("budget") or []
    budget = [budget] if isinstance(budget, str) else budget
    if not isinstance(budget, (list, tuple)) or not all(isinstance(b, str) for b in budget):
        raise ConfigError("budget", "a list of constraints like 'macs<=20000'", budget)
    values["budget"] = tuple(budget)
    values["data"] = parse_data(raw.get("data"))
    values["strategy"] = _section(StrategyConfig, raw.get("strategy"), "strategy", {
        "name": ("a strategy name", _is_name),
        "early_stopping": ("an early-stopping rule name", _is_name),
        "n_startup_trials": _int_in(0, MAX_TRIALS),
        "population_size": _int_in(2, MAX_POPULATION),
        "options": ("a mapping of the strategy's settings", lambda v: isinstance(v, dict)),
    }, aliases={"pruner": "early_stopping"})  # "pruner": Optuna's word, accepted from older configs
    values["fitness"] = _section(FitnessConfig, raw.get("fitness"), "fitness", {
        "cost": ("a metric name", _is_name),
        "weight": ("a finite number >= 0", lambda v: _is_finite(v) and v >= 0),
    })
    values["measure"] = _section(MeasureConfig, raw.get("measure"), "measure", {
        "runtime": ("a latency runtime name such as 'onnxruntime' or 'torch'", _is_name),
        "latency_batch": _int_in(1, MAX_LATENCY_BATCH),
        "latency_repeats": _int_in(1, MAX_LATENCY_REPEATS),
        "threads": _int_in(1, MAX_THREADS),
    })
    if values["data"].layout is not None:
        values["data"] = dataclasses.replace(values["data"], layout=values["data"].layout.lower())
    for section in ("space", "training"):
        value = raw.get(section)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(section, "a mapping", value)
        values[section] = dict(value or {})
    return RunConfig(**values)
