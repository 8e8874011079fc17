"""Search strategies: Optuna samplers by name, and early stopping of weak trials."""

from slimnas.strategies._early_stopping import (
    OptunaReporter,
    ParetoHalvingStopper,
    make_pruner,
    nondominated_rank,
)
from slimnas.strategies._samplers import (
    STRATEGIES,
    StrategyContext,
    list_strategies,
    make_sampler,
    register_strategy,
)

__all__ = [
    "STRATEGIES",
    "OptunaReporter",
    "ParetoHalvingStopper",
    "StrategyContext",
    "list_strategies",
    "make_pruner",
    "make_sampler",
    "nondominated_rank",
    "register_strategy",
]
