"""Trial objectives: what one trial of a study does. Every study runs through the same driver;
they differ by their objective.

:class:`BaseTrialObjective` holds what every objective shares (budgets as Optuna constraints,
early stopping of weak trials, the listener); :class:`SearchObjective` samples a candidate,
trains it (or, with compression genes, trains or reuses its parent and compresses it) and
measures it.
"""

from __future__ import annotations

import contextlib
import errno
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import optuna
import torch

from slimnas._files import storage_error
from slimnas.config import MeasureSettings
from slimnas.data import DataSplits
from slimnas.errors import SlimnasError, TrainingDiverged
from slimnas.export import ExportMismatchError
from slimnas.measure import (
    Artifact,
    Budget,
    evaluate_artifact,
    get_metric,
)
from slimnas.measure._metric import TASK_METRICS
from slimnas.models import build_model
from slimnas.strategies import PrepareContext, get_strategy
from slimnas.strategies._early_stopping import OptunaReporter, ParetoHalvingStopper
from slimnas.strategies._sequenced import FAILED_ALONE, position
from slimnas.study._artifacts import RunFolder
from slimnas.study._driver import TrialFailed, storage_cause
from slimnas.study._events import Listener
from slimnas.study._joint import write_artifact
from slimnas.study._trials import (
    Made,
    compressed_artifact,
    sample_candidate,
    skip,
    trained_artifact,
    warm_artifact,
    worth_training,
)
from slimnas.training import Callback

#: objectives whose value is known after every epoch, so a rule can stop a trial that falls behind
WATCHABLE = ("accuracy", "loss", "fitness")


#: write failures that stop the search (disk full, read-only, no permission) rather than fail one trial
UNWRITABLE = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG)


def failure_reason(error: BaseException) -> str:
    """What made a trial fail, in one line."""
    if isinstance(error, (TrainingDiverged, TrialFailed)):
        return str(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return f"out of memory ({type(error).__name__})"
    if isinstance(error, ExportMismatchError):
        return f"the exported file does not compute what the model does ({error})"
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def trial_place(trial: optuna.Trial) -> int:
    """The trial's place in the study's sequence (its number, less the trials before it that
    were stopped from outside and re-run; see :func:`~slimnas.strategies.position`): training
    is seeded by it, so a trial re-run after a crash or a Ctrl-C, and every trial after it,
    trains as it would have without the interruption."""
    return position(trial.study, trial.number)


class TimeLimit(Callback):
    """Fails a trial whose training passes ``seconds`` since ``start`` (checked every epoch)."""

    def __init__(self, seconds: float, start: float) -> None:
        self.seconds, self.start = seconds, start

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if time.perf_counter() - self.start > self.seconds:
            raise TrialFailed(f"exceeded the per-trial time limit of {self.seconds:g} s (at epoch {epoch})")


@contextlib.contextmanager
def trial_deadline(seconds: float | None, objective: BaseTrialObjective) -> Iterator[None]:
    """Fail the trial running inside once ``seconds`` pass, whatever it is doing (sampling,
    building, training, exporting, measuring): a timer signal raises :class:`TrialFailed` in
    this thread at its next Python instruction. Once the trial's result is being recorded
    (``objective.recording``) it is let finish. Where no timer signal can be used (another
    thread than the main one, or no ``SIGALRM``), :class:`TimeLimit` checks after each epoch."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    t0, done = time.perf_counter(), [False]

    def on_alarm(signum, frame) -> None:
        if not done[0] and not objective.recording:
            raise TrialFailed(f"exceeded the per-trial time limit of {seconds:g} s "
                              f"({time.perf_counter() - t0:.1f} s, {objective.phase})")

    def unraisable(info) -> None:  # dropped where it landed (a finalizer): the next alarm stops the trial
        if not isinstance(info.exc_value, TrialFailed):
            hook(info)

    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        # then again every 0.2 s: an exception raised where Python cannot pass it on (a
        # finalizer, a weakref callback) is dropped, and the next one stops the trial
        signal.setitimer(signal.ITIMER_REAL, float(seconds), 0.2)
        yield
    finally:
        while True:
            try:
                done[0] = True
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                sys.unraisablehook = hook
                break
            except TrialFailed:  # fired as the trial ended: the trial's own outcome stands
                continue


def prepare_context(plan, splits: DataSplits, run: RunFolder, device: torch.device,
                    listener: Listener | None = None, *, run_seed: int | None = None) -> PrepareContext:
    """What the search's strategy may use before and during its trials (see
    :meth:`slimnas.strategies.BaseStrategy.prepare`): its files go to ``<run>/<strategy>/``.
    ``run_seed``: the run's seed where the plan's is a worker's (offset by its index); what the
    strategy prepared is named by the run's, so every worker finds it."""
    cfg = plan.config
    note = (listener or Listener()).note
    return PrepareContext(space=plan.space, data=splits, folder=run.root / cfg.strategy.name,
                          objectives=tuple(plan.objectives), budget=tuple(plan.budget),
                          seed=cfg.seed if run_seed is None else run_seed, device=str(device),
                          options=dict(cfg.strategy.options), measure_settings=plan.measure_settings,
                          note=lambda text: note(text))


def model_metrics(names: Sequence[str], settings: MeasureSettings | None = None) -> list[str]:
    """Parameters, MACs and every other metric of ``names`` known before training (under the
    run's ``settings``: a latency predicted from a device profile's table is)."""
    settings = MeasureSettings.of(settings)
    return list(dict.fromkeys(["params", "macs", *(n for n in names
                                                   if get_metric(n).known_before_training(settings))]))


class BaseTrialObjective:
    """A callable handed to the study driver: evaluates one trial and returns its objective values.

    Args:
        objectives: metric names, the study's objectives.
        budget: hard constraints; each becomes an Optuna constraint, ``<= 0`` when met.
        early_stopping: the rule that stops weak trials (``none``, ``median``, ``hyperband``).
        settings: what metrics read (runtime, fitness weights: :class:`~slimnas.config.MeasureSettings`).
        listener: told about every trial.
    """

    #: the running trial's result is computed and being recorded (a Ctrl-C now waits for it)
    recording = False
    #: what the running trial is doing, in words (a trial over its time limit says it)
    phase = "starting"

    def __init__(self, *, objectives: Sequence[str], budget: Sequence[Budget], early_stopping: str,
                 settings: MeasureSettings | None = None, listener: Listener | None = None) -> None:
        self.objectives, self.budget = tuple(objectives), tuple(budget)
        self.early_stopping, self.settings = early_stopping, MeasureSettings.of(settings)
        self.listener = listener or Listener()
        tracked = [*self.objectives, *(b.metric for b in self.budget)]
        if "fitness" in self.objectives:
            tracked.append(self.settings.get("fitness_cost", "macs"))
        #: every metric the objectives and budgets read
        self.tracked = list(dict.fromkeys(tracked))

    def guard(self, trial: optuna.Trial, evaluate_trial):
        """Run ``evaluate_trial()``; a failure of this trial alone (diverged, out of memory or
        time, an error inside the model) is recorded with its reason and raised as
        :class:`TrialFailed`, so the study goes on. Mistakes in the configuration still stop it."""
        t0 = time.perf_counter()
        try:
            return evaluate_trial()
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except SlimnasError as e:
            if not isinstance(e, TrainingDiverged):
                raise
            error: BaseException = e
        except OSError as e:
            if e.errno in UNWRITABLE:  # the disk, not the trial: every later trial would fail the same way
                raise storage_error(Path(e.filename or "."), e) from None
            error = e
        except Exception as e:  # noqa: BLE001 - one trial's failure is recorded, not the search's end
            if storage_cause(e) is not None:  # the storage failed, not the trial: the run stops
                raise
            error = e
        reason = failure_reason(error)
        trial.set_user_attr("failure", reason)
        trial.set_user_attr(FAILED_ALONE, True)  # it keeps its place: the next trial proposes another candidate
        self.failed(trial, reason, round(time.perf_counter() - t0, 3))
        raise TrialFailed(reason) from error

    def failed(self, trial: optuna.Trial, reason: str, seconds: float) -> None:
        """Hook: record a failed trial (the listener hears of it)."""
        self.listener.trial_finished(trial.number, "failed", {"reason": reason}, seconds)

    def values(self, metrics: dict) -> list[float]:
        """The objective values of ``metrics``; one not measured (a trial skipped before
        training has no accuracy) or not finite is the worst of its direction."""
        out = []
        for name in self.objectives:
            metric = get_metric(name)
            v = metrics.get(metric.key)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                v = -math.inf if metric.direction == "maximize" else math.inf
            out.append(v)
        return out

    def record_constraints(self, trial: optuna.Trial, metrics: dict) -> None:
        """One Optuna constraint per budget, <= 0 when met; constrained samplers (TPE, NSGA-II,
        GP) read them from the trial. Optuna takes each once, so this runs when all metrics are in."""
        values = [b.violation(metrics) if b.key in metrics else 0.0 for b in self.budget]
        for b, v in zip(self.budget, values, strict=True):
            trial.set_constraint(str(b), float(v))
        trial.set_user_attr("constraints", values)

    #: the validation figure early stopping watches, and whether more is better (a task's primary metric)
    watched: tuple[str, str] = ("val_accuracy", "maximize")

    def watchable(self, name: str) -> bool:
        """Whether objective ``name`` is known after every epoch (a task's metrics are)."""
        return name in WATCHABLE or name in TASK_METRICS

    def stops_early(self) -> bool:
        """Whether a rule is set that can stop this study's trials."""
        return self.early_stopping != "none" and (len(self.objectives) > 1 or self.watchable(self.objectives[0]))

    def stoppers(self, trial: optuna.Trial, max_epochs: int) -> list[Callback]:
        """Early stopping: Pareto-rank halving for several objectives (its peers ranked with the
        trial's ``costs`` attribute), Optuna's pruner for one."""
        if len(self.objectives) > 1:
            if self.early_stopping == "none":
                return []
            costs = {k: trial.user_attrs["costs"][k] for k in ("params", "macs")}
            return [ParetoHalvingStopper(trial, costs, rule=self.early_stopping, max_epochs=max_epochs,
                                         watched=self.watched)]
        key = self.objectives[0]
        if not self.watchable(key):
            return []
        if key in TASK_METRICS:
            metric_key = get_metric(key).key
            return [OptunaReporter(trial, lambda m: m[metric_key], watched=self.watched)]
        cost = get_metric(self.settings.get("fitness_cost", "macs")).key
        weight = self.settings.get("fitness_weight", 1e-5)
        costs = trial.user_attrs.get("costs", {})
        value_fn = {
            "accuracy": lambda m: m["val_accuracy"],
            "loss": lambda m: m["val_loss"],
            "fitness": lambda m: m["val_loss"] + weight * costs.get(cost, 0.0),
        }[key]
        return [OptunaReporter(trial, value_fn, watched=self.watched)]


class SearchObjective(BaseTrialObjective):
    """One trial of a search: sample a candidate, make its artifact (:mod:`slimnas.study._trials`:
    trained, compressed, or warm-started from a strategy's weights), measure it with
    :func:`~slimnas.measure.evaluate_artifact`, record it."""

    def __init__(self, plan, splits: DataSplits, run: RunFolder, device: torch.device,
                 listener: Listener | None = None, *, run_seed: int | None = None) -> None:
        super().__init__(objectives=plan.objectives, budget=plan.budget, early_stopping=plan.early_stopping,
                         settings=plan.measure_settings, listener=listener)
        self.plan, self.config, self.splits, self.run, self.device = plan, plan.config, splits, run, device
        self.strategy = get_strategy(self.config.strategy.name)
        primary = splits.task.metric(splits.task.primary)
        self.watched = (f"val_{primary.name}", primary.direction)
        self.prepared = prepare_context(plan, splits, run, device, self.listener, run_seed=run_seed)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        self.recording, self.phase = False, "sampling"
        return self.guard(trial, lambda: self._timed(trial))

    def _timed(self, trial: optuna.Trial) -> list[float]:
        with trial_deadline(self.config.trial_timeout, self):
            return self._evaluate(trial)

    def seed(self, trial: optuna.Trial) -> int:
        """The trial's training seed: the run's (not a worker's, which is offset by its index)
        and the trial's place, so a trial trains alike whichever worker takes it."""
        return self.prepared.seed * 100_003 + trial_place(trial)

    def failed(self, trial: optuna.Trial, reason: str, seconds: float) -> None:
        self.run.trial_dir(trial.number).mkdir(parents=True, exist_ok=True)  # a time limit may end it before its folder
        self.run.write_metrics(trial.number, {"state": "failed", "reason": reason, "seconds": seconds})
        super().failed(trial, reason, seconds)

    def _evaluate(self, trial: optuna.Trial) -> list[float]:
        self.t0 = time.perf_counter()
        cand = sample_candidate(self, trial)
        self.run.write_candidate(trial.number, cand)
        trial.set_user_attr("candidate", cand.to_dict())
        shape, n_classes = self.splits.input_shape, self.splits.n_classes
        torch.manual_seed(self.seed(trial))
        self.phase = "building the model"
        warm = self.strategy.warm_start(trial.study, trial, cand, self.prepared)
        model = build_model(cand.arch, shape, n_classes) if warm is None else warm.model
        self.phase = "measuring the model"
        static = model_metrics(self.tracked, self.settings)
        metrics = evaluate_artifact(Artifact(model, None, shape), self.settings, static)
        trial.set_user_attr("costs", dict(metrics))
        if warm is not None:
            made = warm_artifact(self, trial, warm, metrics)
        elif not worth_training(self, cand, metrics, static):  # over a budget known before training
            return skip(self, trial, metrics)
        else:
            made = (compressed_artifact if cand.compression is not None else trained_artifact)(self, trial, cand,
                                                                                             model, metrics)
        return self.record(trial, made, metrics, "complete")

    def record(self, trial: optuna.Trial, made: Made, metrics: dict, state: str) -> list[float]:
        """Measure the artifact by every metric the study reads (those in ``metrics`` are), write it."""
        self.phase = "measuring the artifact"
        task = self.splits.task  # a detector's loss is its own, given the targets: none on held-out outputs
        loss = [] if task.own_losses and "loss" not in task.metric_names() else ["loss"]
        evaluate_artifact(made.artifact, self.settings, [*loss, task.primary, "bytes", *self.tracked],
                          self.splits, known=metrics)
        if made.decisions is not None:  # a compressed artifact: its file, policy and compressed weights
            write_artifact(self.run.trial_dir(trial.number), made.artifact, made.decisions)
            trial.set_user_attr("policy", made.artifact.policy.to_dict())
        else:
            self.run.write_weights(trial.number, made.artifact.model)
        self.finish(trial, metrics, state, folds=made.folds)
        return self.values(metrics)

    def finish(self, trial: optuna.Trial, metrics: dict, state: str, folds: list[float] | None = None) -> None:
        """Store the trial's metrics. ``folds``: its accuracy on more held-out folds
        (:attr:`WarmStart.folds`); ``val_accuracy`` becomes their mean with this split's."""
        if folds:
            own = metrics["val_accuracy"]
            metrics.update(val_accuracy_split=own, val_accuracy_folds=[own, *folds],
                           val_accuracy=float(sum([own, *folds]) / (1 + len(folds))))
        self.recording = True
        metrics["seconds"] = round(time.perf_counter() - self.t0, 3)
        trial.set_user_attr("metrics", metrics)
        self.record_constraints(trial, metrics)
        fits = all(b.is_met(metrics) for b in self.budget)
        self.run.write_metrics(trial.number, {**metrics, "state": state, "feasible": fits})
        shown = "over budget" if state == "complete" and not fits else state
        self.listener.trial_finished(trial.number, shown, metrics, metrics["seconds"])

    def limits(self) -> list[Callback]:
        """The per-trial time limit, when the config sets one."""
        seconds = self.config.trial_timeout
        return [TimeLimit(seconds, self.t0)] if seconds else []
