"""``slimnas.search``: from a dataset to a tested Pareto front, resumable."""

from __future__ import annotations

import _thread
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from slimnas.config import MeasureSettings, RunConfig
from slimnas.config._load import read_yaml
from slimnas.data import DataSplits, load_dataset
from slimnas.data._loaders import search_splits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.export import onnx_accuracy
from slimnas.export._info import write_run_info
from slimnas.measure._latency import runtime_for
from slimnas.measure._task_metrics import task_scores
from slimnas.spaces import get_family, list_families
from slimnas.strategies import BaseStrategy, get_strategy
from slimnas.study._after import AfterStudy
from slimnas.study._artifacts import RunFolder, write_json
from slimnas.study._definition import check_definition, definition_of
from slimnas.study._driver import (
    n_finished,
    open_study,
    quiet_optuna,
    recover_dead_trials,
    run_study,
    storage_errors,
    torch_threads,
)
from slimnas.study._events import Listener, ListenerGroup
from slimnas.study._joint import final_finetune, rerank_front
from slimnas.study._load import open_model
from slimnas.study._objective import SearchObjective, prepare_context
from slimnas.study._pareto import is_skipped
from slimnas.study._plan import SearchPlan
from slimnas.study._progress import progress_rows
from slimnas.study._record import DAMAGED, damaged_trials, load_study
from slimnas.study._sizes import check_space_size
from slimnas.study._task import check_token_one_shot, compression_notes, one_shot
from slimnas.study._tensorboard import TensorBoardListener


@dataclass
class FrontMember:
    """One model of the final front (or, when nothing meets the budget, one of the closest)."""

    trial: int
    candidate: dict
    metrics: dict
    path: Path

    def to_dict(self) -> dict:
        return {"trial": self.trial, **self.candidate, "metrics": self.metrics, "path": str(self.path)}


@dataclass
class SearchResult:
    """What a search returns: the plan, the study, the tested front, and where it was written."""

    plan: SearchPlan
    study: optuna.Study
    front: list[FrontMember]
    closest: list[FrontMember] = field(default_factory=list)
    run_dir: Path = Path(".")
    interrupted: bool = False
    failed_workers: list[int] = field(default_factory=list)
    #: ``(trial, reason)`` of the trials that failed and were not re-run
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def config(self) -> RunConfig:
        return self.plan.config

    @property
    def pareto_path(self) -> Path:
        return self.run_dir / "pareto.json"

    @property
    def feasible(self) -> bool:
        return bool(self.front)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (or ``cuda:<n>``) where a CUDA device is visible, or ``auto``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ConfigError("device", "'cpu', 'cuda', 'cuda:<n>' or 'auto'", name)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", "'cpu' or 'auto' (no CUDA device is visible)", name)
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError("device", f"a CUDA device below {torch.cuda.device_count()}", name)
    return torch.device(name)


#: what a search on the user's own Datasets / DataLoaders records as its dataset
USER_DATA = "user-data"


def load_splits(plan: SearchPlan, loaders: dict | None = None) -> DataSplits:
    """The plan's data (or the user's ``loaders``: ``{'train', 'val'[, 'test']}`` Datasets or
    DataLoaders), checked against its families (what kinds of data they take) and layout."""
    task = plan.task if plan.config.task is not None else None
    splits = load_dataset(plan.config.data, task=task) if not loaders else search_splits(**loaders, task=task)
    if task is None and splits.task.name != plan.task.name:  # the user's targets say another task (boxes)
        raise ConfigError("task", f"--task {splits.task.name} (task: in a config) for data of {splits.task.name} "
                          "targets (a search picks its objectives and families from the task before it reads "
                          "the data)", f"no task, for {splits.task.name} targets")
    for family in plan.space.families:
        kinds = get_family(family).data_kinds
        if splits.kind and splits.kind not in kinds:
            able = families_for(splits.kind)
            which = (f"{', '.join(able)} {'takes' if len(able) == 1 else 'take'} it" if able
                     else "no registered family takes it")
            raise ConfigError("space.family", f"families that take {splits.kind} data ({family!r} takes "
                              f"{', '.join(kinds)}; {which})", family)
    if splits.kind == "text" and one_shot(plan.config.strategy.name):  # token ids: the supernet's cnn alone
        check_token_one_shot(plan.config.strategy.name, plan.space.families, "text data")
    if splits.preprocessing is not None and splits.preprocessing.input_layout != "channels_first":
        raise ConfigError("data.input_layout", "channels_first in a search (slimnas's families take channels "
                          "first; the option is for compress's own models)", plan.config.data.input_layout)
    check_space_size(plan.space, splits.input_shape, splits.n_classes, splits.vocab_size)
    return splits


def families_for(kind: str) -> list[str]:
    return [f for f in list_families() if kind in get_family(f).data_kinds]


def search(config: str | Path | RunConfig | SearchPlan | None = None, /, *, listener: Listener | None = None,
           **overrides: Any) -> SearchResult:
    """Run (or resume) a search and return its tested Pareto front.

    Args:
        config: a YAML path, a :class:`RunConfig` or :class:`SearchPlan`, or ``None`` for the
            built-in default (MNIST-1D, a small CNN/MLP space, TPE, accuracy and MACs, SQLite study).
        listener: told about the run's progress (the command line renders it); nothing is printed
            otherwise. With ``tensorboard: true`` in the config, a :class:`TensorBoardListener`
            writing to ``<run folder>/tensorboard`` hears it too.
        **overrides: the CLI's options: ``dataset``, ``task``, ``strategy``, ``n_trials``, ``epochs``,
            ``seed``, ``storage``, ``out``, ``name``, ``objectives``, ``budget``,
            ``early_stopping``, ``timeout``, ``device``, ``workers``, ``tensorboard``; ``train``,
            ``val`` and ``test``: your own Datasets or DataLoaders of ``(x, y)`` batches (one float
            tensor per sample) in place of ``dataset``.

    Example:
        >>> result = slimnas.search(dataset="digits", n_trials=4, epochs=1)  # doctest: +SKIP
        >>> [m.metrics["test_accuracy"] for m in result.front]  # doctest: +SKIP
    """
    loaders = {k: overrides.pop(k) for k in ("train", "val", "test") if overrides.get(k) is not None}
    if loaders:  # the user's Datasets / DataLoaders: the run names them, not the default dataset
        if overrides.get("dataset"):
            raise ConfigError("dataset", "either a dataset or train= / val= data (--data), not both",
                              overrides["dataset"])
        overrides["dataset"] = USER_DATA
    plan = config if isinstance(config, SearchPlan) else SearchPlan.load(config, **overrides)
    if loaders and plan.config.n_workers > 1:  # worker processes read the data by the config's name
        raise ConfigError("workers", "1 with train= / val= data (your loaders live in this process only)",
                          plan.config.n_workers)
    if isinstance(config, SearchPlan) and overrides:
        raise TypeError("pass overrides with a YAML path or None, not with a SearchPlan")
    kept = None
    if not isinstance(config, (SearchPlan, RunConfig)) and overrides.get("budget") is None \
            and "budget" not in (read_yaml(config) if config is not None else {}):
        kept = RunFolder(plan.config.run_dir).stored_budget(plan.config.study_name)
        if kept:  # a resume that does not name the budget keeps the run's own
            plan = SearchPlan.load(config, **{**overrides, "budget": kept})
    cfg, listener = plan.config, listener or Listener()
    if kept:
        listener.note(f"resuming with the run's own budget {', '.join(kept)} (from its config.yaml; "
                      "give --budget to change it)", level="warning")
    device = resolve_device(cfg.device)
    splits = load_splits(plan, loaders)  # the data is checked before anything is written
    run = RunFolder(cfg.run_dir)
    board = TensorBoardListener(run.root / "tensorboard") if cfg.tensorboard else None
    if board is not None:
        listener = ListenerGroup(listener, board)
    for note in splits.notes:  # what was assumed reading the data (a layout)
        listener.note(note, level="warning")
    for note in compression_notes(plan, splits.task):  # a task without a distillation term
        listener.note(note)
    try:
        with storage_errors(cfg.storage_url):
            return _search(plan, run, splits, device, listener)
    finally:
        if board is not None:
            board.close()


def _search(plan: SearchPlan, run: RunFolder, splits: DataSplits, device: torch.device,
            listener: Listener) -> SearchResult:
    cfg = plan.config
    with torch_threads(cfg.threads):
        study = claim_run(plan, run)
        for trial in recover_dead_trials(study):
            run.mark_failed(trial.number, trial.user_attrs.get("failure", "its process stopped"))
        for number, reason in rerun_damaged(study, run):
            listener.note(f"trial {number} is re-run: {reason}", level="warning")
        write_run_info(run.root, splits.input_shape, splits.n_classes, **splits.info())
        n_damaged = len(damaged_trials(study))
        n_done = n_finished(study) - n_damaged
        n_todo = max(0, cfg.n_trials - n_done)
        timeout = cfg.timeout
        listener.started({"kind": "search", "study": cfg.study_name, "data": splits.summary(), "n_done": n_done,
                          "n_todo": n_todo, "n_total": cfg.n_trials, "strategy": cfg.strategy.name,
                          "objectives": list(plan.objectives), "budget": [str(b) for b in plan.budget],
                          "run_dir": str(run.root), "n_workers": max(1, min(cfg.n_workers, n_todo)),
                          "timeout": cfg.timeout, "trials": progress_rows(study, plan.budget)})
        seconds = prepare_strategy(plan, study, splits, run, device, listener) if n_todo else 0.0
        interrupted = seconds is None  # a Ctrl-C in it: nothing of it is kept, the same command resumes
        if timeout is not None and not interrupted:  # the timeout covers a one-shot strategy's search too
            timeout = max(1.0, timeout - seconds)
        with Workers(plan, 0 if interrupted else min(cfg.n_workers, n_todo), listener, timeout=timeout) as workers:
            if not interrupted:
                interrupted = run_study(study, SearchObjective(plan, splits, run, device, listener),
                                        n_trials=cfg.n_trials + n_damaged, timeout=timeout, note=listener.note)
            workers.wait(interrupted)
        if workers.failed:
            listener.note(f"{len(workers.failed)} worker process(es) failed (exit codes {workers.failed})",
                          level="warning")
        if interrupted:
            listener.note("interrupted: completed trials are kept; run the same command to resume", level="warning")
        study = open_study(plan.study_spec)  # re-read: workers added trials
        result = finish(plan, study, run, splits, interrupted=interrupted, failed_workers=workers.failed,
                        listener=listener)
        if result.failed:
            reasons = Counter(reason for _, reason in result.failed)
            listener.note(f"{len(result.failed)} trial(s) failed and were left out: "
                          + "; ".join(f"{n} x {r}" for r, n in reasons.most_common(3)), level="warning")
        listener.finished({"kind": "search", "interrupted": interrupted})
        return result


def prepare_strategy(plan: SearchPlan, study: optuna.Study, splits: DataSplits, run: RunFolder,
                     device: torch.device, listener: Listener) -> float | None:
    """Let the strategy work before the trials, once per study (a one-shot method trains its
    supernet or runs its differentiable search here, on the training and validation splits,
    and keeps the result in the run folder and the study, so a resumed run reads it back), in
    this process, before the workers start: it may use their cores. Returns the seconds spent
    (0 for strategies without the hook), or ``None`` when a Ctrl-C stopped it."""
    strategy = get_strategy(plan.config.strategy.name)
    if type(strategy).prepare is BaseStrategy.prepare:
        return 0.0
    cfg, t0 = plan.config, time.perf_counter()
    try:
        with torch_threads(max(cfg.threads, cfg.n_workers) if cfg.threads else 0):
            strategy.prepare(study, prepare_context(plan, splits, run, device, listener))
    except KeyboardInterrupt:
        return None
    return time.perf_counter() - t0


def claim_run(plan: SearchPlan, run: RunFolder) -> optuna.Study:
    """Open the study in its run folder, checking first that neither the folder nor the study
    belongs to another search and that no trial folder the study does not know would be
    overwritten; the folder is claimed atomically (two searches started at once on one folder:
    the second is refused), and a folder created here is removed again if the study cannot be
    opened. Returns the study, the folder marked as its own, ``config.yaml`` written."""
    cfg = plan.config
    run.check_claim(cfg.study_name)
    local = sqlite_file(cfg.storage_url)
    if run.config_path.is_file() and not keeps_definition(cfg.storage_url, cfg.study_name, local):
        # a run written before studies kept their definition (later ones: the study is the record,
        # and config.yaml, rewritten below, may be damaged without harm)
        check_definition(definition_of(read_yaml(run.config_path)), plan.definition, cfg.study_name)
    in_folder = local is not None and local.resolve().parent == run.root.resolve()
    if in_folder and (not local.is_file() or local.stat().st_size == 0):
        run.check_trials_known(None, cfg.study_name)  # study.db deleted or emptied: a new study would overwrite
    if not in_folder:  # a storage of its own: opened before anything is created
        study = open_study(plan.study_spec)
        run.create()
        run.claim(cfg.study_name, cfg.storage_url)
    else:  # the folder's own study.db (the default, or given explicitly): the folder comes first
        study = run.open_claimed(cfg.study_name, cfg.storage_url, lambda: open_study(plan.study_spec))
    run.check_trials_known({t.number for t in study.get_trials(deepcopy=False)}, cfg.study_name)
    run.remove_stale_temp_files()
    run.write_config(plan.to_dict())
    return study


def rerun_damaged(study: optuna.Study, run: RunFolder) -> list[tuple[int, str]]:
    """Complete trials whose files in the run folder no longer read back (truncated, emptied,
    replaced): the study is the record, so each is set aside as failed (the study remembers it
    in ``damaged_trials``; fronts leave it out) and its candidate queued again.
    Returns ``(trial, what is wrong)`` of those found now."""
    known, found = damaged_trials(study), []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if str(t.number) in known or not run.trial_dir(t.number).is_dir():
            continue
        reason = run.damage(t.number)
        if reason is not None:
            found.append((t, reason))
    if found:
        study.set_user_attr(DAMAGED, {**known, **{str(t.number): r for t, r in found}})
        for t, reason in found:
            run.mark_failed(t.number, f"its files were damaged ({reason}); re-run")
            with quiet_optuna():
                study.enqueue_trial(t.params, skip_if_exists=False)
    return [(t.number, r) for t, r in found]


def keeps_definition(url: str, name: str, local: Path | None) -> bool:
    """Whether study ``name`` exists in ``url`` with its definition stored (read only: nothing is
    created where there is no study)."""
    if local is not None and (not local.is_file() or local.stat().st_size == 0):
        return False
    try:
        return "definition" in load_study(url, name).user_attrs
    except SlimnasError:
        return False


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` storage URL (``None`` for other storages)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


class Workers:
    """``n - 1`` extra processes on the same study (this process is worker 0). Each has its own
    sampler seed, so they don't propose the same candidates; the study's storage is their only
    shared state, and ``n_trials`` caps their total. They report their trials to this process's
    listener, and stop when this process dies."""

    def __init__(self, plan: SearchPlan, n: int, listener: Listener, *, timeout: float | None = None) -> None:
        import multiprocessing as mp

        self.plan, self.n, self.listener, self.failed = plan, n, listener, []
        self.timeout = timeout
        self.ctx = mp.get_context("spawn")
        self.procs: list = []
        self.events = self.ctx.Queue() if n > 1 else None
        self.relay: threading.Thread | None = None

    def __enter__(self) -> Workers:
        if self.n <= 1:
            return self
        raw = self.plan.to_dict()
        if self.timeout is not None:  # what is left of it after a one-shot strategy's search
            raw["timeout"] = self.timeout
        self.procs = [self.ctx.Process(target=_worker, args=(raw, k, os.getpid(), self.events), daemon=False)
                      for k in range(1, self.n)]
        for p in self.procs:
            p.start()
        self.relay = threading.Thread(target=self._relay, daemon=True)
        self.relay.start()
        return self

    def _relay(self) -> None:
        while (event := self.events.get()) is not None:
            method, args = event
            getattr(self.listener, method)(*args)

    def wait(self, interrupted: bool) -> None:
        for p in self.procs:
            p.join(timeout=30 if interrupted else None)
        self.failed = [p.exitcode for p in self.procs if p.exitcode]

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.is_alive():  # this process is leaving on an error: its workers stop with it
                p.terminate()
                p.join(timeout=10)
        if self.events is not None:
            self.events.put(None)
            if self.relay is not None:
                self.relay.join(timeout=10)


class QueueListener(Listener):
    """A worker's listener: sends its trials' progress (start, epochs, end) to the main
    process's listener."""

    def __init__(self, events) -> None:
        self.events = events

    def trial_started(self, number, n_epochs):
        self.events.put(("trial_started", (number, n_epochs)))

    def epoch_ended(self, number, epoch, metrics):
        self.events.put(("epoch_ended", (number, epoch, {k: float(v) for k, v in metrics.items()
                                                           if isinstance(v, (int, float))})))

    def trial_finished(self, number, state, metrics, seconds):
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        self.events.put(("trial_finished", (number, state, shown, seconds)))


def _watch_parent(parent: int) -> None:
    """Interrupt this worker (as Ctrl-C does) once the process that started it is gone."""
    while os.getppid() == parent:
        time.sleep(1.0)
    _thread.interrupt_main()


def _worker(raw: dict, k: int, parent: int, events) -> None:
    from slimnas.config import parse_config
    from slimnas.registry import load_plugins

    load_plugins()  # a spawned process starts with the built-ins only
    # a search started in the background (`slimnas search ... &`) inherits SIGINT ignored, and an
    # ignored SIGINT makes _thread.interrupt_main a no-op: handle it as Python does by default
    signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    plan = SearchPlan.from_config(parse_config({**raw, "seed": raw["seed"] + k, "n_workers": 1}))
    cfg = plan.config
    with torch_threads(cfg.threads):
        splits = load_splits(plan)
        study = open_study(plan.study_spec)
        objective = SearchObjective(plan, splits, RunFolder(cfg.run_dir), resolve_device(cfg.device),
                                    QueueListener(events), run_seed=raw["seed"])
        run_study(study, objective, n_trials=cfg.n_trials, timeout=cfg.timeout)  # Ctrl-C: the main process reports it


def finish(plan: SearchPlan, study: optuna.Study, run: RunFolder, splits: DataSplits, *,
           interrupted: bool = False, failed_workers: list[int] | None = None,
           listener: Listener | None = None) -> SearchResult:
    """Evaluate the front on the test set (once per model; cached in its metrics.json) and write
    ``pareto.json``, by the sequence every study ends with (:class:`SearchAfter`). A joint
    search's front is chosen after the full fine-tune of its leading candidates (:func:`rerank_front`)."""
    damaged = damaged_trials(study)
    trials = [t for t in study.get_trials(deepcopy=False) if str(t.number) not in damaged]
    result = SearchAfter(plan, study, run, splits, listener or Listener(), n_damaged=len(damaged)).run(trials)
    result.interrupted, result.failed_workers = interrupted, list(failed_workers or [])
    return result


class SearchAfter(AfterStudy):
    """A search after its study: the Pareto front (a joint search's reranked after the full
    fine-tune of its leading candidates), each compressed member's final fine-tune, its test
    accuracy on its deployable file (once; kept in its metrics.json), a latency predicted during
    the search timed now, and ``pareto.json``."""

    def __init__(self, plan: SearchPlan, study: optuna.Study, run: RunFolder, splits: DataSplits, listener: Listener,
                 *, n_damaged: int = 0) -> None:
        super().__init__(plan.objectives, plan.budget)
        self.plan, self.study, self.run_folder, self.splits, self.listener = plan, study, run, splits, listener
        self.n_damaged = n_damaged

    def rerank(self, front, trials):
        return rerank_front(self.plan, self.run_folder, trials, self.splits, note=self.listener.note)

    def finetune(self, trial, refined) -> dict:
        stored = self.run_folder.read_metrics(trial.number)
        if "policy" in trial.user_attrs and "final" not in stored:
            stored = final_finetune(self.plan, self.run_folder, trial, self.splits,
                                    str(resolve_device(self.plan.config.device)))
        return stored

    def test(self, trial, stored: dict) -> FrontMember:
        run, splits = self.run_folder, self.splits
        if splits.is_classification and "test_accuracy" not in stored:  # the test set is touched once, on the deployable file
            stored["test_accuracy"] = onnx_accuracy(run.onnx_path(trial.number), splits.x_test, splits.y_test)
            run.write_metrics(trial.number, stored)
        elif not splits.is_classification and f"test_{splits.task.primary}" not in stored:  # every metric of the task
            scores = task_scores(splits.task, None, run.onnx_path(trial.number), splits.x_test, splits.y_test)
            stored.update({f"test_{k}": float(v) for k, v in scores.items()})
            run.write_metrics(trial.number, stored)
        remeasure = self.plan.predictor is not None and "latency_ms" in self.plan.tracked
        if remeasure and "measured_latency_ms" not in stored:  # predicted during the search: timed now
            stored.update(remeasure_latency(self.plan, run.onnx_path(trial.number), splits.input_shape))
            run.write_metrics(trial.number, stored)
        metrics = dict(trial.user_attrs["metrics"])
        metrics.update({k: v for k, v in stored.items() if k != "state"})
        return FrontMember(trial.number, trial.user_attrs["candidate"], metrics, run.trial_dir(trial.number))

    def write(self, front, closest, members) -> SearchResult:
        plan, study, run = self.plan, self.study, self.run_folder
        trials = self.trials
        front, closest = [members[t.number] for t in front], [members[t.number] for t in closest]
        doc = {"study": plan.config.study_name, "objectives": list(plan.objectives),
               "budget": [str(b) for b in plan.budget], "feasible": bool(front),
               "n_trials": n_finished(study) - self.n_damaged, "front": [m.to_dict() for m in front]}
        if not front:
            doc["closest"] = [m.to_dict() for m in closest]
        skipped = [t.number for t in trials if t.state == optuna.trial.TrialState.COMPLETE and is_skipped(t)]
        if skipped:  # not trained: over the budget from their size alone; no model is kept
            doc["skipped"] = skipped
        failed = failed_trials(study)
        if failed:
            doc["failed"] = [{"trial": n, "reason": r} for n, r in failed]
        write_json(run.pareto_path, doc)
        return SearchResult(plan=plan, study=study, front=front, closest=closest, run_dir=run.root, failed=failed)


def remeasure_latency(plan: SearchPlan, onnx_path: Path, input_shape: tuple[int, ...]) -> dict:
    """A front member's latency measured on this machine with the device profile's runtime,
    threads, batch and precision, beside the predicted one the search used: the figures the
    report compares (``measured_latency_ms``, ``predicted_latency_ms`` and how each was got)."""
    settings = plan.measure_settings
    runtime = runtime_for(MeasureSettings.of(settings, latency_repeats=max(100, settings.latency_repeats)),
                          field="device_profile.runtime")
    stats = runtime.measure_stats(onnx_path if runtime.times == "file" else load_model_of(onnx_path),
                                  input_shape)
    return {"measured_latency_ms": stats.median_ms, "measured_latency_ms_info": stats.to_dict()}


def load_model_of(onnx_path: Path):
    """The eager model of a trial folder (for eager runtimes re-measuring the front)."""
    return open_model(onnx_path.parent).model


def failed_trials(study: optuna.Study) -> list[tuple[int, str]]:
    """``(trial, reason)`` of every failed trial that was not queued again."""
    trials = study.get_trials(deepcopy=False)
    rerun = {n for t in trials for n in [t.system_attrs.get("failed_trial"), *t.system_attrs.get("retry_history", [])]}
    return [(t.number, t.user_attrs.get("failure", "failed")) for t in trials
            if t.state == optuna.trial.TrialState.FAIL and t.number not in rerun]
