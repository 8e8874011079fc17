"""Training: a readable loop with callbacks that report to early-stopping rules; a supernet's
one-off training (sandwich rule, in-place distillation) and batch-norm recalibration; the listener
that every layer above reports a run's progress to."""

from slimnas.training._events import PHASES, Listener, ListenerGroup, PhaseEpochs, report_phase
from slimnas.training._supernet import (
    SCHEDULES,
    SupernetTraining,
    recalibrate_bn,
    train_supernet,
)
from slimnas.training._trainer import (
    Callback,
    History,
    PlateauStop,
    StopTraining,
    cross_entropy,
    evaluate,
    fit,
    make_optimizer,
    make_scheduler,
    training_now,
)

__all__ = ["PHASES", "SCHEDULES", "Callback", "History", "Listener", "ListenerGroup", "PhaseEpochs", "PlateauStop",
           "StopTraining", "SupernetTraining", "cross_entropy", "evaluate", "fit", "make_optimizer", "make_scheduler",
           "recalibrate_bn", "report_phase", "train_supernet", "training_now"]
