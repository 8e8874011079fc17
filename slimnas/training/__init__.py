"""Training: a readable loop with callbacks that report to early-stopping rules; a supernet's
one-off training (sandwich rule, in-place distillation) and batch-norm recalibration; the listener
that every layer above reports a run's progress to."""

from slimnas.training._events import Listener, ListenerGroup, report_phase
from slimnas.training._supernet import recalibrate_bn
from slimnas.training._trainer import Callback, History, StopTraining, evaluate, fit

__all__ = [
    "Callback",
    "History",
    "Listener",
    "ListenerGroup",
    "StopTraining",
    "evaluate",
    "fit",
    "recalibrate_bn",
    "report_phase",
]
