"""The one driver every study runs through (search, joint search, ``compress --auto``): open or
resume the study, run trials with clean interruption, and pick what it found. Studies differ by
their trial objective only."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from slimnas.errors import ConfigError
from slimnas.measure import get_metric
from slimnas.strategies import StrategyContext, make_sampler, optuna_pruner

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class StudySpec:
    """How to open a study.

    Attributes:
        name: the study's name in its storage.
        storage: an Optuna storage URL (``None``: in memory).
        objectives: metric names; their directions are the study's.
        strategy: a registered strategy's name; ``field`` names it in errors.
        early_stopping: the rule that stops weak trials (resolved, see
            :func:`slimnas.strategies.early_stopping_rule`).
        max_epochs: the training length early stopping watches.
    """

    name: str
    storage: str | None
    objectives: tuple[str, ...]
    strategy: str
    early_stopping: str
    seed: int
    max_epochs: int
    space: Any = None
    n_startup_trials: int = 5
    population_size: int = 20
    field: str = "strategy.name"


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial logging and experimental warnings off for the duration (a Ctrl-C is
    not a failure to report with a traceback); the caller's settings are restored after."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's CPU thread count set to ``n`` (0: unchanged) for the duration."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def open_study(spec: StudySpec) -> optuna.Study:
    """Create or load the study; a loaded one must have the same objectives."""
    directions = [get_metric(o).direction for o in spec.objectives]
    ctx = StrategyContext(space=spec.space, seed=spec.seed, n_objectives=len(directions),
                          n_startup_trials=spec.n_startup_trials, population_size=spec.population_size)
    with quiet_optuna():
        sampler = make_sampler(spec.strategy, ctx, spec.field)
        pruner = optuna_pruner(spec.early_stopping, n_objectives=len(directions), max_epochs=spec.max_epochs)
        study = _create(spec, sampler, pruner, directions)
        stored = study.user_attrs.get("objectives")
        if stored is None:
            study.set_user_attr("objectives", list(spec.objectives))
            study.set_metric_names(list(spec.objectives))
    if stored is not None and [_canonical(o) for o in stored] != list(spec.objectives):
        raise ConfigError("objectives", f"{stored} to resume study {spec.name!r} (or a new --name/--out)",
                          list(spec.objectives))
    return study


def _create(spec: StudySpec, sampler, pruner, directions: list[str]) -> optuna.Study:
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    try:
        for attempt in range(3):
            try:
                study = optuna.create_study(storage=spec.storage, study_name=spec.name, sampler=sampler,
                                            pruner=pruner, directions=directions, load_if_exists=True)
                break
            except SQLAlchemyError as e:
                # Processes started together on an empty database all create Optuna's tables; all
                # but one fail (optuna#1092). The tables exist now: open the study again.
                if attempt == 2 or not (isinstance(e, IntegrityError | ProgrammingError)
                                        or "already exists" in str(e)):
                    raise
    except SQLAlchemyError as e:  # unreachable server, unknown database or dialect, unwritable SQLite file
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise ConfigError("storage", "a reachable Optuna storage URL", f"{spec.storage}: {reason}") from None
    except (ValueError, ImportError, RuntimeError) as e:
        if "storage" in str(e).lower() or "url" in str(e).lower() or isinstance(e, ImportError):
            raise ConfigError("storage", "a reachable Optuna storage URL", f"{spec.storage}: {e}") from None
        if "direction" in str(e).lower():
            raise ConfigError("objectives", f"the objectives study {spec.name!r} was created with "
                              "(or a new --name/--out)", list(spec.objectives)) from None
        raise
    return study


def _canonical(name: str) -> str:
    try:
        return get_metric(name).name
    except ConfigError:
        return name


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(study: optuna.Study, objective: Callable[[optuna.Trial], Any], *, n_trials: int,
              timeout: float | None = None) -> bool:
    """Run trials until the study holds ``n_trials`` finished ones (or ``timeout`` seconds pass).

    Ctrl-C interrupts a trial's training at once; once the trial's result is computed
    (``objective.recording`` is true) it waits while the result is recorded and Optuna writes
    it to storage (Optuna cannot unwind an interrupt there: the write is lost and an unrelated
    error escapes), then stops the study. Returns whether it was interrupted; completed trials
    are kept either way and the same call resumes.
    """
    n_todo = max(0, n_trials - n_finished(study))
    if not n_todo:
        return False
    state = {"in_trial": False, "pending": False}

    def guarded(trial: optuna.Trial):
        state["in_trial"] = True
        try:
            return objective(trial)
        finally:
            state["in_trial"] = False

    def on_sigint(signum, frame) -> None:
        if state["in_trial"] and not getattr(objective, "recording", False):
            raise KeyboardInterrupt
        state["pending"] = True
        with contextlib.suppress(RuntimeError):  # outside optimize(): nothing left to stop
            study.stop()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        with quiet_optuna():
            study.optimize(guarded, n_trials=n_todo, timeout=timeout, gc_after_trial=False,
                           callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)])
    except KeyboardInterrupt:
        return True
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return state["pending"]
