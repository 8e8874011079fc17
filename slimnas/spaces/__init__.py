"""Search spaces: config choices -> frozen architecture specs (define-by-run with Optuna)."""

from slimnas.spaces._compression import CompressionSpace
from slimnas.spaces._params import Param, parse_param
from slimnas.spaces._space import FAMILIES, SearchSpace
from slimnas.spaces._spec import (
    ArchSpec,
    Candidate,
    CNNSpec,
    ConvLayer,
    MLPSpec,
    RNNSpec,
    TrainSpec,
    arch_from_dict,
    arch_to_dict,
)

__all__ = [
    "FAMILIES",
    "ArchSpec",
    "CNNSpec",
    "CompressionSpace",
    "Candidate",
    "ConvLayer",
    "MLPSpec",
    "Param",
    "RNNSpec",
    "SearchSpace",
    "TrainSpec",
    "arch_from_dict",
    "arch_to_dict",
    "parse_param",
]
