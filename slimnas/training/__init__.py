"""Training: a readable loop with callbacks that report to early-stopping rules; a supernet's
one-off training (sandwich rule, in-place distillation) and batch-norm recalibration."""

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
    training_now,
)

__all__ = ["SCHEDULES", "Callback", "History", "PlateauStop", "StopTraining", "SupernetTraining", "cross_entropy",
           "evaluate", "fit", "make_optimizer", "recalibrate_bn", "train_supernet", "training_now"]
