"""What a run reports while it works. The library only calls a :class:`Listener` (defined in
:mod:`slimnas.training`, the lowest layer that reports, and the same class here); the command
line renders it (a live progress display, one line per trial, tables)."""

from __future__ import annotations

from slimnas.training import Callback, Listener, ListenerGroup

__all__ = ["EpochReporter", "Listener", "ListenerGroup"]


class EpochReporter(Callback):
    """A training callback that tells the listener about every epoch of one trial."""

    def __init__(self, listener: Listener, number: int) -> None:
        self.listener, self.number = listener, number

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.listener.epoch_ended(self.number, epoch, metrics)
