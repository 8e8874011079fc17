"""``slimnas.search``: from a dataset to a tested Pareto front, resumable."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from rich.console import Console

from slimnas.compress._onnx import accuracy as onnx_accuracy
from slimnas.config import OBJECTIVES, RunConfig, load_config, save_config
from slimnas.data import DataSplits, load_dataset
from slimnas.errors import ConfigError
from slimnas.strategies import StrategyContext, make_pruner, make_sampler
from slimnas.study._artifacts import RunFolder, write_json
from slimnas.study._compressed import final_finetune
from slimnas.study._objective import TrialObjective
from slimnas.study._pareto import pareto_front
from slimnas.study._progress import SearchProgress

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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
    """What a search returns: the study, the tested front, and where everything was written."""

    config: RunConfig
    study: optuna.Study
    front: list[FrontMember]
    closest: list[FrontMember] = field(default_factory=list)
    run_dir: Path = Path(".")
    interrupted: bool = False

    @property
    def pareto_path(self) -> Path:
        return self.run_dir / "pareto.json"

    @property
    def feasible(self) -> bool:
        return bool(self.front)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "'cpu' or 'auto' (no CUDA device is visible)", name)
    return torch.device(name)


def stopped_epochs(config: RunConfig) -> int:
    """Length of the training that early stopping watches: the candidate's training, or with
    compression genes the short ranking fine-tune (parents always train in full)."""
    if config.space.compression is not None:
        return max(1, config.space.compression.value("finetune_epochs"))
    return config.epochs or config.space.max_epochs


def open_study(config: RunConfig) -> optuna.Study:
    """Create or load the study; a loaded one must have the same objectives."""
    directions = [OBJECTIVES[o].direction for o in config.objectives]
    ctx = StrategyContext(
        space=config.space,
        seed=config.seed,
        n_objectives=len(directions),
        n_startup_trials=config.strategy.n_startup_trials,
        population_size=config.strategy.population_size,
    )
    sampler = make_sampler(config.strategy.name, ctx)
    pruner = make_pruner(config.strategy.pruner, n_objectives=len(directions), max_epochs=stopped_epochs(config),
                         strategy=config.strategy.name)
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    try:
        for attempt in range(3):
            try:
                study = optuna.create_study(storage=config.storage_url, study_name=config.study_name,
                                            sampler=sampler, pruner=pruner, directions=directions,
                                            load_if_exists=True)
                break
            except SQLAlchemyError as e:
                # Processes started together on an empty database all create Optuna's tables; all
                # but one fail (optuna#1092). The tables exist now: open the study again.
                if attempt == 2 or not (isinstance(e, IntegrityError | ProgrammingError)
                                        or "already exists" in str(e)):
                    raise
    except SQLAlchemyError as e:  # unreachable server, unknown database or dialect, unwritable SQLite file
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ConfigError("storage", "a reachable Optuna storage URL", f"{config.storage_url}: {reason}") from None
    except (ValueError, ImportError, RuntimeError) as e:
        if "storage" in str(e).lower() or "url" in str(e).lower() or isinstance(e, ImportError):
            raise ConfigError("storage", "a reachable Optuna storage URL", f"{config.storage_url}: {e}") from None
        raise
    stored = study.user_attrs.get("objectives")
    if stored is None:
        study.set_user_attr("objectives", list(config.objectives))
        study.set_metric_names(list(config.objectives))
    elif list(stored) != list(config.objectives):
        raise ConfigError("objectives", f"{stored} to resume study {config.study_name!r} (or a new --name/--out)",
                          list(config.objectives))
    return study


def search(config: str | Path | RunConfig | None = None, /, *, console: Console | None = None,
           progress: bool = True, **overrides: Any) -> SearchResult:
    """Run (or resume) a search and return its tested Pareto front.

    Args:
        config: a YAML path, a :class:`RunConfig`, or ``None`` for the built-in default
            (MNIST-1D, a small CNN/MLP space, TPE, accuracy and MACs, SQLite study).
        console: where the progress and tables go (a quiet one for library use).
        progress: show the live progress display.
        **overrides: the CLI's options: ``dataset``, ``strategy``, ``n_trials``, ``epochs``,
            ``seed``, ``storage``, ``out``, ``name``, ``objectives``, ``budget``, ``pruner``,
            ``timeout``, ``device``.

    Example:
        >>> result = slimnas.search(dataset="digits", n_trials=4, epochs=1)  # doctest: +SKIP
        >>> [m.metrics["test_accuracy"] for m in result.front]  # doctest: +SKIP
    """
    if isinstance(config, RunConfig):
        if overrides:
            raise TypeError("pass overrides with a YAML path or None, not with a RunConfig")
        cfg = config
    else:
        cfg = load_config(config, **overrides)
    from slimnas.report import make_console, print_front

    console = console or make_console()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    optuna.logging.set_verbosity(logging.ERROR)  # a Ctrl-C is not a failure to report with a traceback
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    device = resolve_device(cfg.device)
    run = RunFolder(cfg.run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    d = cfg.data
    splits = load_dataset(d.dataset, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.seed,
                          label_column=d.label_column)
    study = open_study(cfg)
    save_config(cfg, run.config_path)

    n_done = len(study.get_trials(deepcopy=False, states=FINISHED))
    n_todo = max(0, cfg.n_trials - n_done)
    console.print(f"[bold]slimnas search[/] {cfg.study_name}: {splits.summary()}; {n_done} trials done, "
                  f"{n_todo} to run ({cfg.strategy.name}, objectives {', '.join(cfg.objectives)}"
                  + (f", budget {', '.join(map(str, cfg.budget))}" if cfg.budget else "") + f") -> {run.root}")
    interrupted = False
    workers = start_workers(cfg, min(cfg.n_workers, n_todo))
    with SearchProgress(console, n_total=cfg.n_trials, n_done=n_done, enabled=progress) as bar:
        try:
            optimize(cfg, study, TrialObjective(cfg, splits, run, bar, device), n_todo)
            for p in workers:
                p.join()
            failed = [p.exitcode for p in workers if p.exitcode]
            if failed:
                console.print(f"[red]{len(failed)} worker process(es) failed (exit codes {failed})[/]")
        except KeyboardInterrupt:
            interrupted = True
            for p in workers:
                p.join(timeout=30)
            console.print("[yellow]interrupted: completed trials are kept; run the same command to resume[/]")
    study = open_study(cfg)  # re-read: workers added trials
    result = finish(cfg, study, run, splits, interrupted=interrupted)
    print_front(result, console)
    return result


def optimize(cfg: RunConfig, study: optuna.Study, objective: TrialObjective, n_todo: int) -> None:
    """Run ``n_todo`` trials. Ctrl-C interrupts a trial's training at once; once the trial's result
    is computed it waits while the result is recorded and Optuna writes it to storage (Optuna
    cannot unwind an interrupt there: the write is lost and an unrelated error escapes), then
    stops the study. Either way the caller sees ``KeyboardInterrupt``."""
    if not n_todo:
        return
    state = {"in_trial": False, "pending": False}

    def guarded(trial: optuna.Trial):
        state["in_trial"] = True
        try:
            return objective(trial)
        finally:
            state["in_trial"] = False

    def on_sigint(signum, frame) -> None:
        if state["in_trial"] and not objective.recording:
            raise KeyboardInterrupt
        state["pending"] = True
        with contextlib.suppress(RuntimeError):  # outside optimize(): nothing left to stop
            study.stop()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        study.optimize(guarded, n_trials=n_todo, timeout=cfg.timeout, gc_after_trial=False,
                       callbacks=[optuna.study.MaxTrialsCallback(cfg.n_trials, states=FINISHED)])
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    if state["pending"]:
        raise KeyboardInterrupt


def start_workers(cfg: RunConfig, n_workers: int) -> list:
    """``n_workers - 1`` extra processes on the same study (this process is worker 0). Each has
    its own sampler seed, so they don't propose the same candidates; the study's storage is
    their only shared state, and ``n_trials`` caps their total."""
    import multiprocessing as mp

    if n_workers <= 1:
        return []
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(cfg.to_dict(), k), daemon=False) for k in range(1, n_workers)]
    for p in procs:
        p.start()
    return procs


def _worker(raw: dict, k: int) -> None:
    from slimnas.config import parse_config

    cfg = parse_config({**raw, "seed": raw["seed"] + k, "n_workers": 1})
    optuna.logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = cfg.data
    splits = load_dataset(d.dataset, val_fraction=d.val_fraction, test_fraction=d.test_fraction, seed=d.seed,
                          label_column=d.label_column)
    study = open_study(cfg)
    quiet = Console(quiet=True)
    n_todo = max(0, cfg.n_trials - len(study.get_trials(deepcopy=False, states=FINISHED)))
    try:
        with SearchProgress(quiet, n_total=cfg.n_trials, n_done=0, enabled=False) as bar:
            optimize(cfg, study, TrialObjective(cfg, splits, RunFolder(cfg.run_dir), bar,
                                                resolve_device(cfg.device)), n_todo)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the main process reports it
        pass


def finish(cfg: RunConfig, study: optuna.Study, run: RunFolder, splits: DataSplits, *,
           interrupted: bool = False) -> SearchResult:
    """Evaluate the front on the test set (once per model; cached in its metrics.json) and write
    ``pareto.json``."""
    front_trials, closest_trials = pareto_front(study.get_trials(deepcopy=False), cfg.objectives, cfg.budget)

    def member(t) -> FrontMember:
        metrics = dict(t.user_attrs["metrics"])
        stored = run.read_metrics(t.number)
        if "policy" in t.user_attrs and "final" not in stored:
            stored = final_finetune(cfg, run, t, splits)
        if "test_accuracy" not in stored:  # the test set is touched once, on the deployable file
            stored["test_accuracy"] = onnx_accuracy(run.onnx_path(t.number).read_bytes(), splits.x_test, splits.y_test)
            run.write_metrics(t.number, stored)
        metrics.update({k: v for k, v in stored.items() if k != "state"})
        return FrontMember(t.number, t.user_attrs["candidate"], metrics, run.trial_dir(t.number))

    front = [member(t) for t in front_trials]
    closest = [member(t) for t in closest_trials]
    doc = {
        "study": cfg.study_name,
        "objectives": list(cfg.objectives),
        "budget": [str(b) for b in cfg.budget],
        "feasible": bool(front),
        "n_trials": len(study.get_trials(deepcopy=False, states=FINISHED)),
        "front": [m.to_dict() for m in front],
    }
    if not front:
        doc["closest"] = [m.to_dict() for m in closest]
    write_json(run.pareto_path, doc)
    return SearchResult(config=cfg, study=study, front=front, closest=closest, run_dir=run.root,
                        interrupted=interrupted)
