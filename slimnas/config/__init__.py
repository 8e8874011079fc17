"""Configuration: plain, typed dataclasses; YAML only at the edge (here)."""

from slimnas.config._load import OVERRIDES, load_config, read_yaml, save_config
from slimnas.config._schema import (
    DATA_EXTRAS,
    DEVICES,
    NORMALIZE,
    DataConfig,
    FitnessConfig,
    MeasureConfig,
    RunConfig,
    StrategyConfig,
    data_to_dict,
    parse_config,
)

__all__ = [
    "DATA_EXTRAS",
    "DEVICES",
    "NORMALIZE",
    "OVERRIDES",
    "DataConfig",
    "FitnessConfig",
    "MeasureConfig",
    "RunConfig",
    "StrategyConfig",
    "data_to_dict",
    "load_config",
    "parse_config",
    "read_yaml",
    "save_config",
]
