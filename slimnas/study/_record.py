"""A run folder read back after (or during) its search: the resolved config, the study in its
storage, the front, and the shapes its models take. What ``slimnas report``, ``export``,
``runs`` and :func:`slimnas.load` read a run through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import optuna

from slimnas._files import read_json
from slimnas.config._load import read_yaml
from slimnas.config._schema import DATA_EXTRAS, parse_data
from slimnas.data import DataSplits, load_dataset
from slimnas.errors import ConfigError, DamagedFileError
from slimnas.export._info import read_run_info
from slimnas.measure import Budget, get_metric, list_metrics
from slimnas.measure._metric import signed
from slimnas.study._driver import quiet_optuna


def is_search_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file()


@dataclass(frozen=True)
class RunRecord:
    """A search run folder: ``config.yaml`` as written, ``pareto.json`` once the search ended,
    ``run.json`` (shapes; absent in runs written before it existed), and the study."""

    root: Path
    config: dict
    pareto: dict | None
    info: dict

    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def objectives(self) -> tuple[str, ...]:
        return tuple(self.config["objectives"])

    @property
    def budget(self) -> tuple[Budget, ...]:
        return tuple(Budget.parse(b) for b in self.config.get("budget") or ())

    @property
    def quality(self) -> dict[str, str]:
        """The figures that stand for a model's quality in this run (``val_accuracy``, or its
        task's primary metric: ``val_r2``; see :func:`slimnas.tasks._run.quality`)."""
        from slimnas.tasks._run import quality

        return quality(self.info.get("task"))

    @property
    def n_trials(self) -> int:
        return int(self.config["n_trials"])

    @property
    def storage_url(self) -> str:
        """The run's own ``study.db`` when it has one (wherever the folder was moved), else the
        configured storage."""
        local = self.root / "study.db"
        return f"sqlite:///{local.resolve()}" if local.is_file() or not self.config.get("storage") \
            else self.config["storage"]

    @cached_property
    def study(self) -> optuna.Study:
        return load_study(self.storage_url, self.name)

    @property
    def front(self) -> list[dict]:
        """The front as ``pareto.json`` holds it (tested members), empty before the search ends."""
        return list((self.pareto or {}).get("front", []))

    @property
    def data_args(self) -> dict:
        """:func:`slimnas.data.load_dataset`'s arguments for the run's data, split as the search split it."""
        d = self.config.get("data", {})
        return {"name": d.get("dataset", "mnist1d"), "val_fraction": d.get("val_fraction", 0.2),
                "test_fraction": d.get("test_fraction", 0.2), "seed": d.get("seed", 0),
                "label_column": d.get("label_column", "label"), **{k: d[k] for k in DATA_EXTRAS if k in d},
                **({"task": self.config["task"]} if self.config.get("task") else {})}

    def data(self) -> DataSplits:
        return load_dataset(**self.data_args)

    def shapes(self) -> tuple[tuple[int, ...], int]:
        """``(input_shape, n_classes)`` from ``run.json``, or from the data for older runs."""
        if "input_shape" in self.info:
            return tuple(self.info["input_shape"]), int(self.info["n_classes"])
        splits = self.data()
        return splits.input_shape, splits.n_classes


def open_run(folder: str | Path) -> RunRecord:
    """Read a search run folder; one clear error when it is missing or not a search run."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError("run", "an existing run folder", str(root))
    if not is_search_run(root):
        raise ConfigError("run", "a search run folder (with config.yaml)", str(root))
    pareto_path = root / "pareto.json"
    pareto = read_json(pareto_path, PARETO_SHAPE, _is_pareto) if pareto_path.is_file() else None
    info = read_run_info(root)
    if isinstance(info.get("task"), dict) and "spec" in info["task"]:  # a user's task: its metrics by name
        from slimnas.measure._task_metrics import register_task_metrics
        from slimnas.tasks._run import task_from_record

        register_task_metrics(task_from_record(info["task"]))
    return RunRecord(root, read_run_config(root / "config.yaml"), pareto, info)


PARETO_SHAPE = "a JSON object whose 'front' lists members ({\"trial\": n, \"metrics\": {...}})"


def _is_pareto(doc) -> bool:
    return isinstance(doc, dict) and all(isinstance(m["trial"], int) and isinstance(m["metrics"], dict)
                                         for m in [*doc.get("front", []), *doc.get("closest", [])])


def read_run_config(path: Path) -> dict:
    """A run's ``config.yaml``, checked to hold what reading the run needs (a truncated or
    replaced file is a :class:`DamagedFileError` naming it)."""
    try:
        config = read_yaml(path)
    except ConfigError as e:
        raise DamagedFileError(path, str(e), "the run's resolved configuration (YAML)") from None
    except (UnicodeDecodeError, RecursionError) as e:
        raise DamagedFileError(path, f"it is not a YAML text ({type(e).__name__})",
                               "the run's resolved configuration (YAML)") from None
    checks = {"name": lambda v: isinstance(v, str) and v, "objectives": lambda v: isinstance(v, list) and v,
              "n_trials": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "budget": lambda v: v is None or isinstance(v, list), "data": lambda v: isinstance(v, dict),
              "storage": lambda v: v is None or isinstance(v, str)}
    for key, ok in checks.items():
        if key not in config and key in ("budget", "storage", "data"):
            continue
        if key not in config or not ok(config[key]):
            raise DamagedFileError(path, f"its {key!r} is {'missing' if key not in config else 'of another type'}"
                                   " (truncated or edited)", "the run's resolved configuration (YAML)")
    try:  # the data section rebuilds the run's splits: a value no run is written with means an edited file
        parse_data(config.get("data"))
    except ConfigError as e:
        raise DamagedFileError(path, f"{e} (truncated or edited)", "the run's resolved configuration (YAML)") from None
    return config


#: the study's user attribute naming its trials whose files were found damaged (and re-run)
DAMAGED = "damaged_trials"


def damaged_trials(study: optuna.Study) -> dict[str, str]:
    """``{trial number: what was wrong}`` of the trials set aside for damaged files."""
    return dict(study.user_attrs.get(DAMAGED) or {})


def load_study(storage: str, name: str) -> optuna.Study:
    """An existing study, read-only use (no sampler set up); one line when it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        raise ConfigError("run", "a run whose SQLite storage exists (opening it would create an empty one)",
                          storage)  # SQLAlchemy creates a missing file
    if storage.startswith("sqlite:///") and Path(storage.removeprefix("sqlite:///")).stat().st_size == 0:
        raise DamagedFileError(Path(storage.removeprefix("sqlite:///")), "the file is empty (opening it would "
                               "write an empty database)", "the run's Optuna study (SQLite)")
    try:
        with quiet_optuna():
            return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ConfigError("run", f"a storage that holds study {name!r}", storage) from None
    except (SQLAlchemyError, ValueError, ImportError, RuntimeError) as e:
        raise ConfigError("run", "a readable Optuna storage", f"{storage}: {str(e).splitlines()[0]}") from None


def parse_best(best: str | Sequence[str], field: str = "best") -> tuple[Budget, ...]:
    """Budgets a chosen front member must meet: ``"latency_ms<=0.2"``, several separated by
    commas or given as a list, or ``""`` for none."""
    texts = [best] if isinstance(best, str) else list(best)
    parts = [p.strip() for t in texts for p in t.split(",") if p.strip()]
    return tuple(Budget.parse(p, field) for p in parts)


def select_member(front: Sequence[dict], objectives: Sequence[str], best: str | Sequence[str], *,
                  field: str = "best") -> dict:
    """The front member with the best objectives (the first one first) among those meeting the
    extra budgets ``best``; one clear error when none does or a budget names a metric the
    members were not measured on."""
    budgets = parse_best(best, field)
    if not front:
        raise ConfigError(field, "a run with a front (nothing met the run's budget: choose a trial by number)", best)
    carried = set.intersection(*(set(m["metrics"]) for m in front))
    for b in budgets:
        if b.key not in carried:
            names = [n for n in list_metrics() if get_metric(n).key in carried]
            raise ConfigError(field, f"a budget on a metric the front members were measured on ({', '.join(names)})",
                              str(b))
    meeting = [m for m in front if all(b.is_met(m["metrics"]) for b in budgets)]
    if not meeting:
        miss = min(front, key=lambda m: sum(max(0.0, b.violation(m["metrics"])) / max(abs(b.limit), 1e-12)
                                            for b in budgets))
        shown = ", ".join(f"{b.key} {miss['metrics'][b.key]:.4g}" for b in budgets)
        raise ConfigError(field, f"a budget one of the {len(front)} front members meets (closest: trial "
                          f"{miss['trial']}, {shown})", ", ".join(map(str, budgets)))
    return min(meeting, key=lambda m: (signed(m["metrics"], objectives), m["trial"]))
