"""Configuration: plain, typed dataclasses; YAML only at the edge (here)."""

from slimnas.config._load import OVERRIDES, load_config, read_yaml, save_config
from slimnas.config._profile import (
    BUILTIN_PROFILES,
    PRECISIONS,
    DeviceProfile,
    list_builtin_profiles,
    parse_profile,
    read_profile,
    write_profile,
)
from slimnas.config._schema import (
    DATA_EXTRAS,
    DEVICES,
    MAX_EPOCHS,
    MAX_SEED,
    NORMALIZE,
    DataConfig,
    FitnessConfig,
    MeasureConfig,
    RunConfig,
    StrategyConfig,
    data_to_dict,
    parse_config,
)
from slimnas.config._settings import MeasureSettings

__all__ = [
    "DATA_EXTRAS",
    "BUILTIN_PROFILES",
    "PRECISIONS",
    "DeviceProfile",
    "list_builtin_profiles",
    "parse_profile",
    "read_profile",
    "write_profile",
    "DEVICES",
    "MAX_EPOCHS",
    "MAX_SEED",
    "NORMALIZE",
    "OVERRIDES",
    "DataConfig",
    "FitnessConfig",
    "MeasureConfig",
    "MeasureSettings",
    "RunConfig",
    "StrategyConfig",
    "data_to_dict",
    "load_config",
    "parse_config",
    "read_yaml",
    "save_config",
]
