"""Search strategies by name (each an Optuna sampler whose state lives in the study; one-shot ones,
such as the once-for-all ``supernet``, also work before the trials) and the early stopping of
weak trials. Strategies plug in with :func:`register_strategy`."""

from slimnas.strategies import (
    _darts,  # noqa: F401  (registers darts)
    _darts_net,  # noqa: F401 (loaded as before)
    _ehvi,  # noqa: F401 (registers ehvi)
    _evolution,  # noqa: F401 (loaded as before)
    _genes,  # noqa: F401 (loaded as before)
    _local,  # noqa: F401 (loaded as before)
    _predictor,  # noqa: F401 (loaded as before)
    _samplers,  # noqa: F401  (registers the built-in strategies)
    _sequenced,  # noqa: F401 (loaded as before)
    _supernet,  # noqa: F401 (loaded as before)
)
from slimnas.strategies._base import (
    STRATEGIES,
    BaseStrategy,
    PrepareContext,
    StrategyContext,
    StrategyOption,
    WarmStart,
    get_strategy,
    list_strategies,
    register_strategy,
)
from slimnas.strategies._early_stopping import EARLY_STOPPING, check_early_stopping
from slimnas.strategies._history import BaseHistorySampler
from slimnas.strategies._oneshot import BaseOneShotStrategy, OneShotContext, stored_result
from slimnas.strategies._reinforce import stored_controller

__all__ = [
    "PrepareContext",
    "WarmStart",
    "EARLY_STOPPING",
    "STRATEGIES",
    "BaseHistorySampler",
    "BaseOneShotStrategy",
    "BaseStrategy",
    "OneShotContext",
    "StrategyContext",
    "StrategyOption",
    "check_early_stopping",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "register_strategy",
    "stored_controller",
    "stored_result",
]
