"""Training: a readable loop with callbacks that report to early-stopping rules; the listener
that every layer above reports a run's progress to."""

from slimnas.training._events import PHASES, Listener, ListenerGroup, PhaseEpochs, report_phase
from slimnas.training._trainer import (
    Callback,
    History,
    PlateauStop,
    StopTraining,
    cross_entropy,
    evaluate,
    fit,
    make_optimizer,
    training_now,
)

__all__ = ["PHASES", "Callback", "History", "Listener", "ListenerGroup", "PhaseEpochs", "PlateauStop", "StopTraining",
           "cross_entropy", "evaluate", "fit", "make_optimizer", "report_phase", "training_now"]
