"""Configuration: plain, typed dataclasses; YAML only at the edge (here)."""

from slimnas.config._load import OVERRIDES, load_config, read_yaml, save_config
from slimnas.config._schema import (
    DEVICES,
    DataConfig,
    FitnessConfig,
    MeasureConfig,
    RunConfig,
    StrategyConfig,
    parse_config,
)

__all__ = [
    "DEVICES",
    "OVERRIDES",
    "DataConfig",
    "FitnessConfig",
    "MeasureConfig",
    "RunConfig",
    "StrategyConfig",
    "load_config",
    "parse_config",
    "read_yaml",
    "save_config",
]
