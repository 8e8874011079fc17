"""``slimnas runs``: the runs under a folder, each with its status, progress and best model.

A run's status is read from its study and its files, with no process bookkeeping:

- ``empty``: the study holds no trial yet;
- ``running``: a trial is running that started after the run last wrote its result
  (``pareto.json``, or ``report.json`` for ``compress --auto``);
- ``complete``: as many trials finished as the run asked for (a ``compress`` with a
  ``report.json``);
- ``interrupted``: fewer, and nothing running (Ctrl-C, a timeout, a crash): the same command
  resumes it.

A process killed outright leaves its trial marked running in the storage, so such a run shows
as ``running`` until the run is resumed and ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from slimnas._files import check_not_interrupted, read_json
from slimnas.errors import ConfigError, DamagedFileError, SlimnasError
from slimnas.study._driver import FINISHED
from slimnas.study._pareto import is_skipped, pareto_front
from slimnas.study._record import damaged_trials, is_search_run, load_study, open_run


@dataclass(frozen=True)
class RunSummary:
    """One run as ``slimnas runs`` lists it.

    Attributes:
        kind: ``search`` or ``compress``.
        status: ``complete``, ``running``, ``interrupted``, ``empty`` (or ``unreadable``, or
            ``damaged`` where one of its files is, with the reason in ``note``).
        n_done, n_total: finished trials and the trials asked for (``None`` where not known).
        best: the best model so far (the front member with the best first objective; the
            compressed model of a ``compress``): ``{"trial": n, "metrics": {...}}``.
        objectives: the run's objectives (a ``compress`` reports accuracy and MACs).
    """

    name: str
    folder: Path
    kind: str
    status: str
    n_done: int | None = None
    n_total: int | None = None
    best: dict | None = None
    objectives: tuple[str, ...] = ("accuracy", "macs")
    note: str = ""
    #: finished trials skipped before training (over the budget from their size alone)
    n_skipped: int = 0

    def to_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "kind": self.kind, "status": self.status,
                "n_done": self.n_done, "n_total": self.n_total, "n_skipped": self.n_skipped, "best": self.best,
                "objectives": list(self.objectives), "note": self.note}


def run_status(trials: Sequence[FrozenTrial], n_total: int | None, written_at: float | None) -> str:
    """The status of a run from its trials, the trials it asked for, and when it last wrote
    its result (a timestamp; ``None`` if never)."""
    if not trials:
        return "empty"
    if any(t.state == TrialState.RUNNING and (written_at is None or t.datetime_start.timestamp() > written_at)
           for t in trials):
        return "running"
    n_done = sum(t.state in FINISHED for t in trials)
    return "complete" if n_total is not None and n_done >= n_total else "interrupted"


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.is_file() else None


def summarize_run(folder: str | Path) -> RunSummary:
    """One run folder (search or ``compress``); a run that cannot be read is ``unreadable``."""
    folder = Path(folder)
    if (folder / "tabular.json").is_file():  # slimnas search --benchmark: written when it ends
        return _tabular(folder)
    try:
        return _search(folder) if is_search_run(folder) else _compress(folder)
    except SlimnasError as e:  # a damaged file is named in the note; the other runs are listed as usual
        return RunSummary(folder.name, folder, "search" if is_search_run(folder) else "compress",
                          "damaged" if isinstance(e, DamagedFileError) else "unreadable", note=str(e))


def _search(folder: Path) -> RunSummary:
    run = open_run(folder)
    damaged = damaged_trials(run.study)  # set aside and re-run: not the run's
    trials = [t for t in run.study.get_trials(deepcopy=False) if str(t.number) not in damaged]
    tested = {m["trial"]: m["metrics"] for m in run.front}
    front, _ = pareto_front(trials, run.objectives, run.budget)
    best = None
    if front:
        t = front[0]
        best = {"trial": t.number, "metrics": {**t.user_attrs["metrics"], **tested.get(t.number, {})}}
    return RunSummary(run.name, folder, "search", run_status(trials, run.n_trials, _mtime(folder / "pareto.json")),
                      sum(t.state in FINISHED for t in trials), run.n_trials, best, run.objectives,
                      n_skipped=sum(t.state == TrialState.COMPLETE and is_skipped(t) for t in trials))


def _tabular(folder: Path) -> RunSummary:
    doc = read_json(folder / "tabular.json", "a JSON object of the tabular search (with 'summary')",
                    lambda d: isinstance(d["summary"], dict))
    s = doc["summary"]
    best = ({"trial": s["best_trial"], "metrics": {"val_accuracy": s["best_mean"] / 100}}  # the table's %
            if "best_mean" in s else None)
    objectives = tuple("accuracy" if o == "val_accuracy" else o for o in doc["objectives"])
    return RunSummary(doc["name"], folder, "tabular", "complete", s["n_evaluations"], doc["n_trials"], best,
                      objectives, note=doc["benchmark"])


def _compress(folder: Path) -> RunSummary:
    report = folder / "report.json"
    best = None
    objectives = _compress_objectives(folder)
    if report.is_file():
        best = {"trial": None, "metrics": read_json(report, "a JSON object of the compress result (with 'after')",
                                                    lambda d: isinstance(d.get("after", {}), dict)).get("after", {})}
    if not (folder / "study.db").is_file():  # a compress by a given policy: no study
        return RunSummary(folder.name, folder, "compress", "complete" if best else "empty", best=best,
                          objectives=objectives)
    trials = load_study(f"sqlite:///{(folder / 'study.db').resolve()}", "auto").get_trials(deepcopy=False)
    status = "complete" if best else run_status(trials, None, None)
    return RunSummary(folder.name, folder, "compress", status, sum(t.state in FINISHED for t in trials), None, best,
                      objectives=objectives)


def _compress_objectives(folder: Path) -> tuple[str, ...]:
    """What a compress output reports: accuracy and MACs, or its task's primary metric (run.json's)."""
    from slimnas.export._info import read_run_info
    from slimnas.tasks._run import quality

    try:
        task = read_run_info(folder).get("task")
    except Exception:  # noqa: BLE001 - an unreadable run.json: the summary's default
        task = None
    return (quality(task if isinstance(task, dict) else None)["metric"], "macs")


def is_run(folder: Path) -> bool:
    """A search run, or a ``compress`` output (its report, or the study of ``--auto`` under way)."""
    return folder.is_dir() and any((folder / f).is_file() for f in ("config.yaml", "report.json", "study.db"))


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    """Every run in ``root`` (its sub-folders, or ``root`` itself), newest first."""
    root = Path(root)
    check_not_interrupted(root)  # a compress output cut short while being replaced
    if not root.is_dir():
        raise ConfigError("root", "an existing folder of runs", str(root))
    # hidden folders are not runs: a compress output being written (.<name>.<pid>.tmp) or moved aside
    folders = [root] if is_run(root) else [p for p in root.iterdir() if not p.name.startswith(".") and is_run(p)]
    folders.sort(key=lambda p: max((f.stat().st_mtime for f in p.iterdir() if f.is_file()), default=0), reverse=True)
    return [summarize_run(p) for p in folders]
