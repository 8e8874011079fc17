"""Training: a readable loop with callbacks that report to early-stopping rules."""

from slimnas.training._trainer import (
    Callback,
    History,
    cross_entropy,
    evaluate,
    fit,
    make_optimizer,
)

__all__ = ["Callback", "History", "cross_entropy", "evaluate", "fit", "make_optimizer"]
