"""What a run reports while it works. The library only calls a :class:`Listener`; the command
line renders it (a live progress display, one line per trial or phase, tables).

The listener is defined here, in the lowest layer that reports progress (training epochs), so
every layer above (compression, studies) reports through the same object;
``slimnas.study.Listener`` is this class.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from slimnas.training._trainer import Callback


class Listener:
    """Receives a run's progress; every method is an optional no-op hook.

    Call order in a search: :meth:`started` once; per trial :meth:`trial_started`,
    :meth:`epoch_ended` after each training epoch, :meth:`trial_finished`; :meth:`finished`
    once at the end. :meth:`note` and :meth:`sensitivity` whenever there is something to say.

    ``compress`` and ``compress --auto`` also report their phases, one after the other (see
    :data:`PHASES`): :meth:`phase_started`, :meth:`phase_epoch` after each training epoch
    inside it, :meth:`phase_progress` after each counted step (a layer, a fine-tune),
    :meth:`phase_finished`. A phase that fails raises and is not finished.

    Example:
        >>> class Printer(Listener):
        ...     def phase_started(self, phase, info):
        ...         print(phase, info.get("epochs"))
        >>> from slimnas.training import report_phase
        >>> with report_phase(Printer(), "train", label="training", epochs=3):
        ...     pass
        train 3
    """

    def started(self, info: dict[str, Any]) -> None:
        """The run's set-up: ``kind`` (``search`` or ``auto``), the data, what is done and to do."""

    def trial_started(self, number: int, n_epochs: int) -> None:
        """Trial ``number`` starts training for up to ``n_epochs``."""

    def epoch_ended(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch of trial ``number`` ended."""

    def trial_finished(self, number: int, state: str, metrics: dict[str, Any], seconds: float) -> None:
        """Trial ``number`` ended as ``state`` (complete, pruned, skipped, failed, over budget)."""

    def note(self, text: str, *, level: str = "info") -> None:
        """Something the user should know (``level``: info or warning)."""

    def sensitivity(self, result: Any) -> None:
        """A sensitivity analysis finished (a :class:`slimnas.compress.SensitivityResult`)."""

    def phase_started(self, phase: str, info: dict[str, Any]) -> None:
        """A phase begins. ``info``: ``label`` (what it does, in words); ``total`` and ``unit``
        when it counts steps (layers, trials, fine-tunes); ``epochs`` when it trains (a cap when
        training stops once validation accuracy stops improving)."""

    def phase_epoch(self, phase: str, epoch: int, n_epochs: int, metrics: dict[str, float]) -> None:
        """A training epoch inside the phase ended (``epoch`` restarts at 1 with each training)."""

    def phase_progress(self, phase: str, done: int, info: dict[str, Any]) -> None:
        """``done`` of the phase's ``total`` steps are finished; ``info`` describes the last one."""

    def phase_finished(self, phase: str, info: dict[str, Any], seconds: float) -> None:
        """The phase ended after ``seconds``; ``info``: what it found (an accuracy, files)."""

    def finished(self, info: dict[str, Any]) -> None:
        """The run ended (``interrupted``: whether it was stopped early)."""


#: the phases of ``compress`` and ``compress --auto``, in the order they run
PHASES = ("load", "train", "measure", "sensitivity", "search", "compress", "refine", "finetune", "export")


class ListenerGroup(Listener):
    """Passes every event to each of ``listeners`` in turn (a console and a TensorBoard log)."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = [lis for lis in listeners if lis is not None]

    def _each(self, method: str, *args, **kwargs) -> None:
        for lis in self.listeners:
            getattr(lis, method)(*args, **kwargs)

    def started(self, info):
        self._each("started", info)

    def trial_started(self, number, n_epochs):
        self._each("trial_started", number, n_epochs)

    def epoch_ended(self, number, epoch, metrics):
        self._each("epoch_ended", number, epoch, metrics)

    def trial_finished(self, number, state, metrics, seconds):
        self._each("trial_finished", number, state, metrics, seconds)

    def note(self, text, *, level="info"):
        self._each("note", text, level=level)

    def sensitivity(self, result):
        self._each("sensitivity", result)

    def phase_started(self, phase, info):
        self._each("phase_started", phase, info)

    def phase_epoch(self, phase, epoch, n_epochs, metrics):
        self._each("phase_epoch", phase, epoch, n_epochs, metrics)

    def phase_progress(self, phase, done, info):
        self._each("phase_progress", phase, done, info)

    def phase_finished(self, phase, info, seconds):
        self._each("phase_finished", phase, info, seconds)

    def finished(self, info):
        self._each("finished", info)


class PhaseEpochs(Callback):
    """A training callback that tells the listener about every epoch of a phase's training.
    ``phase`` and ``n_epochs`` may be changed between trainings (one per compression step)."""

    def __init__(self, listener: Listener, phase: str, n_epochs: int) -> None:
        self.listener, self.phase, self.n_epochs = listener, phase, n_epochs

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.listener.phase_epoch(self.phase, epoch, self.n_epochs, metrics)


@contextlib.contextmanager
def report_phase(listener: Listener | None, phase: str, **info: Any) -> Iterator[dict[str, Any]]:
    """Tell ``listener`` that ``phase`` starts (with ``info``) and, when the block ends without
    an error, that it finished; the block fills the dict it gets with what the phase found.
    Does nothing without a listener."""
    found: dict[str, Any] = {}
    if listener is None:
        yield found
        return
    t0 = time.perf_counter()
    listener.phase_started(phase, info)
    yield found
    listener.phase_finished(phase, {**info, **found}, round(time.perf_counter() - t0, 3))
