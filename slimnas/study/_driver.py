"""The one driver every study runs through (search, joint search, ``compress --auto``): open or
resume the study, run trials with clean interruption, and pick what it found. Studies differ by
their trial objective only."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from slimnas.errors import ConfigError, SlimnasError, StorageUnreachable
from slimnas.measure import get_metric
from slimnas.strategies import StrategyContext
from slimnas.strategies._base import make_sampler
from slimnas.strategies._early_stopping import optuna_pruner
from slimnas.study._definition import check_definition
from slimnas.training._trainer import training_now

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: a running trial writes a heartbeat this often; one silent for GRACE_S is failed and re-run
HEARTBEAT_S, GRACE_S = 10, 60


class TrialFailed(Exception):
    """One trial failed (training diverged, ran out of memory or time, the model raised); the
    study records it with its reason and goes on."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def this_worker() -> dict:
    """Where the running process is: a trial records it, so a restart can tell a trial whose
    process was killed from one that another process still runs."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


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
    #: what makes the study this search (see ``SearchPlan.definition``); checked on resume
    definition: dict | None = None
    #: the strategy's own settings (config ``strategy.options``)
    options: dict | None = None


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
                          n_startup_trials=spec.n_startup_trials, population_size=spec.population_size,
                          options=dict(spec.options or {}), objectives=tuple(spec.objectives))
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
    if spec.definition is not None:
        check_definition(study.user_attrs.get("definition"), spec.definition, spec.name)
        if "definition" not in study.user_attrs:
            study.set_user_attr("definition", spec.definition)
    return study


def make_storage(url: str | None):
    """An RDB storage with heartbeats: a trial whose process dies is failed after ``GRACE_S``
    and queued again with the same candidate (``None``: in memory)."""
    if url is None:
        return None
    return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))


def _create(spec: StudySpec, sampler, pruner, directions: list[str]) -> optuna.Study:
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    try:
        for attempt in range(3):
            try:
                study = optuna.create_study(storage=make_storage(spec.storage), study_name=spec.name,
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


def retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial's candidate again (it keeps its place in the sequence: the run
    continues as if it had not been interrupted)."""
    if trial.params:
        with quiet_optuna():
            RetryHeartbeatStaleTrialCallback()(study, trial)


def recover_dead_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Fail the running trials whose process on this machine is gone (killed) and queue them
    again; the heartbeat does the same for other machines after ``GRACE_S``."""
    host, out = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != host or pid_alive(int(worker.get("pid", -1))):
            continue
        frozen = fail_dead_trial(study, t, "its process stopped (killed?); re-run")
        if frozen is not None:
            retry(study, frozen)
            out.append(frozen)
    return out


def fail_dead_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> FrozenTrial | None:
    """Fail a running trial whose process is gone, with ``reason``; ``None`` when another
    process failed or finished it first."""
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        study._storage.set_trial_user_attr(trial._trial_id, "failure", reason)
        if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return study._storage.get_trial(trial._trial_id)
    return None


def heartbeat_ages(study: optuna.Study) -> dict[int, float] | None:
    """Seconds since each running trial's last heartbeat, by trial id (a trial that has not
    beaten yet is absent); ``None`` where the storage keeps no heartbeats (in memory)."""
    backend = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    if not isinstance(backend, RDBStorage) or backend.get_heartbeat_interval() is None:
        return None
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = (session.query(models.TrialHeartbeatModel.trial_id, models.TrialHeartbeatModel.heartbeat)
                .join(models.TrialModel, models.TrialModel.trial_id == models.TrialHeartbeatModel.trial_id)
                .filter(models.TrialModel.study_id == study._study_id,
                        models.TrialModel.state == TrialState.RUNNING).all())
    return {trial_id: (now - beat.replace(tzinfo=None)).total_seconds() for trial_id, beat in rows}


def settle_dead_workers(study: optuna.Study, n_trials: int, *, wait: bool = True,
                        note: Callable[[str], None] = lambda text: None, sleep: Callable[[float], None] = time.sleep
                        ) -> list[tuple[int, bool]]:
    """Called by a process that has run its last trial: fail the trials left running by
    processes that died (killed on this machine: at once; on another machine: once their
    heartbeat has been silent for ``GRACE_S``, waited out when ``wait``), and queue their
    candidates again where the study is short of ``n_trials``. While a trial's process still
    runs (here, or beating elsewhere) nothing is done: the last process to finish settles them.
    Returns ``(trial, re-queued)`` of the trials it failed."""
    host, out = socket.gethostname(), []
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return out
        ages = heartbeat_ages(study) or {}
        dead, silent = [], []
        for t in running:
            worker = t.user_attrs.get("worker") or {}
            if worker.get("host") == host and "pid" in worker:
                if pid_alive(int(worker["pid"])):
                    return out  # a process here runs it and settles after it
                dead.append(t)
                continue
            age = ages.get(t._trial_id)
            if age is None or age < 2 * HEARTBEAT_S:
                return out  # beating: its process is alive
            (dead if age > GRACE_S else silent).append(t)
        for t in dead:
            queued = len(study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.WAITING)))
            again = queued < n_trials and bool(t.params)  # a trial killed before it drew a candidate: a new one
            reason = ("its process stopped (killed?); re-run" if again else
                      f"its process stopped (killed?); not re-run: the study already has its {n_trials} trials")
            frozen = fail_dead_trial(study, t, reason)
            if frozen is not None:
                if again:
                    retry(study, frozen)
                out.append((t.number, again))
        if dead:
            continue
        numbers = ", ".join(str(t.number) for t in silent)
        if not wait:
            note(f"trial(s) {numbers} of a process that stopped answering are left running: a start of this "
                 f"search once their heartbeat has been silent for {GRACE_S} s fails them (and re-runs their "
                 "candidates while the study is short of its trials)")
            return out
        left = max(0.0, GRACE_S - max(ages[t._trial_id] for t in silent)) + 1.0
        note(f"waiting {left:.0f} s for trial(s) {numbers}, whose process stopped answering, to be failed and re-run")
        sleep(min(left, HEARTBEAT_S))


def storage_cause(error: BaseException) -> BaseException | None:
    """The storage's own error behind ``error`` (itself, its cause or the error it was raised
    while handling: Optuna's trial loop, failing to record a trial, raises an unrelated error
    from its ``finally``), or ``None``."""
    from sqlalchemy.exc import SQLAlchemyError

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (SQLAlchemyError, optuna.exceptions.StorageInternalError)):
            return e
        e = e.__cause__ or e.__context__
    return None


def storage_error(error: BaseException, url: str | None) -> SlimnasError | None:
    """The one-line error for a storage that failed under a running study: a database server
    that stopped answering is :class:`StorageUnreachable` (completed trials are kept, the same
    command resumes); a storage that refused a write is a :class:`ConfigError`. ``None`` when
    ``error`` did not come from the storage."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, PendingRollbackError

    cause = storage_cause(error)
    if cause is None:
        return None
    inner = storage_cause(cause.__cause__) if isinstance(cause, optuna.exceptions.StorageInternalError) else None
    found = inner or cause
    reason = (str(getattr(found, "orig", None) or found).strip().splitlines() or [type(found).__name__])[0]
    server = url is not None and not url.startswith("sqlite")
    # PendingRollbackError: the session's connection dropped inside a transaction (the server went
    # away mid-write), reported on the next use of that session
    lost = isinstance(found, (OperationalError, InterfaceError, PendingRollbackError)) or (
        isinstance(found, DBAPIError) and found.connection_invalidated)
    if server and lost:
        return StorageUnreachable(shown_url(url), reason)
    return ConfigError("storage", "a storage slimnas can write to (completed trials are kept in it; the same "
                       "command resumes once it can be written: space left, write permission)",
                       f"{shown_url(url) if url else 'the study storage'}: {reason}")


def shown_url(url: str) -> str:
    """A storage URL as it may be printed (its password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - shown as given when SQLAlchemy cannot read it
        return url


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a storage that failed under a running study (a full disk, a read-only file, a server
    gone) into its one-line error (:func:`storage_error`): the completed trials are in it, and the
    same command resumes."""
    try:
        yield
    except SlimnasError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised unless a storage error is at its root
        error = storage_error(e, url)
        if error is None:
            raise
        raise error from None


def run_study(study: optuna.Study, objective: Callable[[optuna.Trial], Any], *, n_trials: int,
              timeout: float | None = None, note: Callable[[str], None] = lambda text: None) -> bool:
    """Run trials until the study holds ``n_trials`` finished ones (or ``timeout`` seconds pass).

    Ctrl-C interrupts a trial's training at once (the trial is failed and queued again, so the
    study continues its sequence when resumed); anywhere else, such as a write to the storage
    (Optuna cannot unwind an interrupt there: the write is lost and an unrelated error escapes),
    the trial finishes and is recorded, then the study stops. Returns whether it was
    interrupted; completed trials are kept either way and the same call resumes. Once its own
    trials are done, the trials that processes which died left running are failed and, where
    the study is short of ``n_trials``, re-run (:func:`settle_dead_workers`).
    """
    n_todo = max(0, n_trials - n_finished(study))
    if not n_todo:  # nothing to run: only the trials that dead processes left are failed
        settle_dead_workers(study, n_trials, wait=False, note=note)
        return False
    state: dict[str, Any] = {"in_trial": False, "pending": False, "trial": None}

    def guarded(trial: optuna.Trial):
        state["in_trial"], state["trial"] = True, trial
        trial.set_user_attr("worker", this_worker())
        try:
            return objective(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("failure", "interrupted (Ctrl-C); re-run first when the study resumes")
            raise
        finally:
            state["in_trial"] = False

    def on_sigint(signum, frame) -> None:
        # inside training, stop at once; anywhere else (a write to the storage or the run
        # folder, a measurement) let the trial finish and be recorded, then stop
        if state["in_trial"] and training_now() and not getattr(objective, "recording", False):
            raise KeyboardInterrupt
        state["pending"] = True
        with contextlib.suppress(RuntimeError):  # outside optimize(): nothing left to stop
            study.stop()

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    t0 = time.monotonic()
    try:
        with quiet_optuna():
            study.optimize(guarded, n_trials=n_todo, timeout=timeout, gc_after_trial=False, catch=(TrialFailed,),
                           callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)])
            while not state["pending"]:
                in_time = timeout is None or time.monotonic() - t0 < timeout
                settled = settle_dead_workers(study, n_trials, wait=in_time, note=note)
                left = n_trials - n_finished(study)
                if not any(again for _, again in settled) or left <= 0 or not in_time:
                    break
                study.optimize(guarded, n_trials=left, gc_after_trial=False, catch=(TrialFailed,),
                               timeout=None if timeout is None else max(1.0, timeout - (time.monotonic() - t0)),
                               callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)])
    except KeyboardInterrupt:
        if state["trial"] is not None:
            frozen = study._storage.get_trial(state["trial"]._trial_id)
            if frozen.state == TrialState.FAIL:
                retry(study, frozen)
        return True
    except Exception as e:
        backend = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
        error = storage_error(e, getattr(backend, "url", None))
        if error is None:
            raise
        raise error from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    return state["pending"]
