"""Training: a readable loop with callbacks that report to early-stopping rules."""

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

__all__ = ["Callback", "History", "PlateauStop", "StopTraining", "cross_entropy", "evaluate", "fit", "make_optimizer", "training_now"]
