"""Configuration: plain, typed dataclasses; YAML only at the edge (here)."""

from slimnas.config._load import load_config
from slimnas.config._names import (
    DEFAULT_RUNTIME,
    Precision,
    get_precision,
    precision_names,
    register_precision,
)
from slimnas.config._profile import DeviceProfile, list_builtin_profiles
from slimnas.config._schema import (
    DataConfig,
    FitnessConfig,
    MeasureConfig,
    RunConfig,
    StrategyConfig,
    parse_config,
)
from slimnas.config._settings import MeasureSettings

__all__ = [
    "DEFAULT_RUNTIME",
    "Precision",
    "get_precision",
    "precision_names",
    "register_precision",
    "DeviceProfile",
    "list_builtin_profiles",
    "DataConfig",
    "FitnessConfig",
    "MeasureConfig",
    "MeasureSettings",
    "RunConfig",
    "StrategyConfig",
    "load_config",
    "parse_config",
]
