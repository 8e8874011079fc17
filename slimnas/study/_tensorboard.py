"""TensorBoard logging of a study, as a listener: ``slimnas search --tensorboard`` (or
``tensorboard: true`` in the config) writes event files under ``runs/NAME/tensorboard/``;
``tensorboard --logdir runs/NAME/tensorboard`` shows them.

The hypervolume at each trial is computed as the report computes it (:func:`progress`) over
the trials finished by then, with the scales known by then: where a budget caps a cost, the
limit; otherwise the largest value so far, which only grows, so for the usual objectives
(accuracy and a cost) the curve never falls. Its last point equals the report's.
"""

from __future__ import annotations

import datetime
import math
import threading
from pathlib import Path
from typing import Any

from slimnas.errors import ConfigError
from slimnas.measure import Budget, get_metric
from slimnas.study._events import Listener
from slimnas.study._progress import progress

#: epoch metrics (as training reports them) -> TensorBoard tags of a trial's curves
EPOCH_TAGS = {"train_loss": "train/loss", "val_loss": "val/loss", "val_accuracy": "val/accuracy"}


def summary_writer_class():
    """``torch.utils.tensorboard.SummaryWriter``; one line naming the missing package otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("tensorboard", "the tensorboard package to be installed (pip install tensorboard, "
                          "or slimnas[tensorboard])", "true") from None
    return SummaryWriter


class TensorBoardListener(Listener):
    """Writes a study's progress as TensorBoard event files under ``log_dir``.

    - ``trial_NNNNN/``: the trial's training curves by epoch (``train/loss``, ``val/loss``,
      ``val/accuracy``), one run per trial so TensorBoard overlays them;
    - ``log_dir`` itself: each trial's final figures (``trial/<metric>``: ``val_accuracy``,
      ``params``, ``macs``, ``bytes``, ``latency_ms``, ``seconds``, ...; step = trial number)
      and the study's ``study/best_<objective>`` (the best first objective among models that
      meet the budget) and, with two or more objectives, ``study/hypervolume``, at each
      finished trial (step = trials finished so far, a resumed study's earlier ones included).

    Nothing is written before :meth:`started`; :meth:`close` (or :meth:`finished`) ends the files.

    Example:
        >>> result = slimnas.search(dataset="digits", n_trials=4, epochs=1,
        ...                         listener=TensorBoardListener("runs/digits-tpe/tensorboard"))  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer_class = summary_writer_class()  # a missing package is reported before any work
        self.writer = None
        self.trials: dict[int, Any] = {}
        self.rows: list[dict] = []
        self.objectives: list[str] = ["accuracy"]
        self.budget: list[Budget] = []
        self.lock = threading.Lock()  # the trials of worker processes arrive on another thread

    def started(self, info: dict[str, Any]) -> None:
        self.objectives = list(info.get("objectives") or ["accuracy"])
        self.budget = [Budget.parse(b) for b in info.get("budget") or []]
        self.rows = [dict(r) for r in info.get("trials") or []]  # a resumed study's finished trials
        if self.writer is None:
            self.writer = self._writer_class(log_dir=str(self.log_dir))

    def phase_started(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "search" and "trials" in info:  # compress --auto: its study's finished trials
            with self.lock:
                self.rows = [dict(r) for r in info["trials"]]

    def _trial_writer(self, number: int):
        if number not in self.trials:
            self.trials[number] = self._writer_class(log_dir=str(self.log_dir / f"trial_{number:05d}"))
        return self.trials[number]

    def trial_started(self, number: int, n_epochs: int) -> None:
        with self.lock:
            self._trial_writer(number)

    def epoch_ended(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        with self.lock:
            writer = self._trial_writer(number)
            tags = {**EPOCH_TAGS, **{k: f"val/{k.removeprefix('val_')}" for k in metrics  # another task's: val/r2
                                     if k.startswith("val_") and k not in EPOCH_TAGS}}
            for key, tag in tags.items():
                if _finite(metrics.get(key)):
                    writer.add_scalar(tag, metrics[key], epoch)

    def trial_finished(self, number: int, state: str, metrics: dict[str, Any], seconds: float) -> None:
        with self.lock:
            self._trial_finished(number, state, metrics, seconds)

    def _trial_finished(self, number: int, state: str, metrics: dict[str, Any], seconds: float) -> None:
        writer = self.trials.pop(number, None)
        if writer is not None:
            writer.close()
        if self.writer is None or state == "failed":
            return
        figures = {k: v for k, v in metrics.items() if _finite(v)}
        figures.setdefault("seconds", seconds)
        for key, value in sorted(figures.items()):
            self.writer.add_scalar(f"trial/{key}", value, number)
        self.rows.append({"trial": number, "state": "complete" if state == "over budget" else state,
                          "metrics": figures, "feasible": state == "complete",
                          "completed": datetime.datetime.now().isoformat()})
        points = progress(self.rows, self.objectives, self.budget)["points"]
        if points and points[-1]["trial"] == number:
            last, step = points[-1], len(points)
            if last["best"] is not None:
                self.writer.add_scalar(f"study/best_{get_metric(self.objectives[0]).name}", last["best"], step)
            if last["hypervolume"] is not None:
                self.writer.add_scalar("study/hypervolume", last["hypervolume"], step)
        self.writer.flush()

    def finished(self, info: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        """Close every event file (the listener can be started again)."""
        with self.lock:
            for writer in self.trials.values():
                writer.close()
            self.trials.clear()
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
