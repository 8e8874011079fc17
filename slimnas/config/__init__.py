"""Configuration: typed dataclasses in the core, YAML only at the edge."""

from slimnas.config._budget import Budget
from slimnas.config._load import OVERRIDES, load_config, read_yaml, save_config
from slimnas.config._objectives import OBJECTIVES, Objective, parse_objectives
from slimnas.config._schema import (
    PRUNERS,
    DataConfig,
    FitnessConfig,
    MeasureConfig,
    RunConfig,
    StrategyConfig,
    parse_config,
)

__all__ = [
    "OBJECTIVES",
    "OVERRIDES",
    "PRUNERS",
    "Budget",
    "DataConfig",
    "FitnessConfig",
    "MeasureConfig",
    "Objective",
    "RunConfig",
    "StrategyConfig",
    "load_config",
    "parse_config",
    "parse_objectives",
    "read_yaml",
    "save_config",
]
