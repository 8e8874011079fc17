"""What a run reports while it works. The library only calls a :class:`Listener`; the command
line renders it (a live progress display, one line per trial, tables)."""

from __future__ import annotations

from typing import Any

from slimnas.training import Callback


class Listener:
    """Receives a run's progress; every method is an optional no-op hook.

    Call order: :meth:`started` once; per trial :meth:`trial_started`, :meth:`epoch_ended`
    after each training epoch, :meth:`trial_finished`; :meth:`note` and :meth:`sensitivity`
    whenever there is something to say.
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


class EpochReporter(Callback):
    """A training callback that tells the listener about every epoch of one trial."""

    def __init__(self, listener: Listener, number: int) -> None:
        self.listener, self.number = listener, number

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.listener.epoch_ended(self.number, epoch, metrics)
