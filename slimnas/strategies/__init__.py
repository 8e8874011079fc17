"""Search strategies by name (each an Optuna sampler whose state lives in the study; one-shot ones,
such as the once-for-all ``supernet``, also work before the trials) and the early stopping of
weak trials. Strategies plug in with :func:`register_strategy`."""

from slimnas.strategies import (
    _darts,  # noqa: F401  (registers darts)
    _samplers,  # noqa: F401  (registers the built-in strategies)
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
    make_sampler,
    register_strategy,
)
from slimnas.strategies._darts import DartsSampler, DartsStrategy
from slimnas.strategies._darts_net import CnnChoices, DartsSupernet
from slimnas.strategies._early_stopping import (
    EARLY_STOPPING,
    OptunaReporter,
    ParetoHalvingStopper,
    check_early_stopping,
    early_stopping_rule,
    nondominated_rank,
    optuna_pruner,
)
from slimnas.strategies._evolution import EvolutionStrategy, RegularizedEvolutionSampler
from slimnas.strategies._genes import (
    from_unit,
    in_distribution,
    mutate,
    neighbours,
    random_value,
    to_unit,
)
from slimnas.strategies._history import BaseHistorySampler, best_front, fitness_keys, violation
from slimnas.strategies._local import LocalSearchSampler, LocalSearchStrategy
from slimnas.strategies._oneshot import BaseOneShotStrategy, OneShotContext, stored_result
from slimnas.strategies._predictor import (
    PREDICTORS,
    AccuracyPredictor,
    held_out_scores,
    kendall,
    spearman,
)
from slimnas.strategies._reinforce import (
    CONTROLLER_KEY,
    ReinforceSampler,
    ReinforceStrategy,
    stored_controller,
)
from slimnas.strategies._sequenced import FAILED_ALONE, SequencedSampler, position, trial_seed
from slimnas.strategies._supernet import (
    SupernetOptions,
    SupernetSampler,
    SupernetStrategy,
    centre_recipe,
    stored_candidates,
)

__all__ = [
    "CONTROLLER_KEY",
    "PREDICTORS",
    "AccuracyPredictor",
    "PrepareContext",
    "SupernetOptions",
    "SupernetSampler",
    "SupernetStrategy",
    "WarmStart",
    "centre_recipe",
    "held_out_scores",
    "kendall",
    "spearman",
    "stored_candidates",
    "EARLY_STOPPING",
    "STRATEGIES",
    "BaseHistorySampler",
    "BaseOneShotStrategy",
    "CnnChoices",
    "DartsSampler",
    "DartsStrategy",
    "DartsSupernet",
    "BaseStrategy",
    "EvolutionStrategy",
    "LocalSearchSampler",
    "LocalSearchStrategy",
    "OneShotContext",
    "OptunaReporter",
    "ParetoHalvingStopper",
    "SequencedSampler",
    "FAILED_ALONE",
    "RegularizedEvolutionSampler",
    "ReinforceSampler",
    "ReinforceStrategy",
    "StrategyContext",
    "StrategyOption",
    "best_front",
    "check_early_stopping",
    "in_distribution",
    "early_stopping_rule",
    "fitness_keys",
    "from_unit",
    "get_strategy",
    "list_strategies",
    "make_sampler",
    "mutate",
    "neighbours",
    "nondominated_rank",
    "optuna_pruner",
    "position",
    "register_strategy",
    "trial_seed",
    "random_value",
    "register_strategy",
    "stored_controller",
    "stored_result",
    "to_unit",
    "violation",
]
