"""Search spaces: config choices -> frozen candidates (define-by-run with Optuna).

Architecture families register here (:func:`register_family`); the built-in ones are
:mod:`slimnas.models` files. Compression genes are declared by :mod:`slimnas.compress`.
"""

from slimnas.spaces._family import (
    FAMILIES,
    BaseFamily,
    Draw,
    arch_from_dict,
    arch_to_dict,
    get_family,
    list_families,
    register_family,
    sample_arch,
)
from slimnas.spaces._params import (
    MAX_LAYERS,
    MAX_VALUE,
    Key,
    Param,
    grid_of,
    layer_count,
    parse_keys,
    parse_param,
)
from slimnas.spaces._policy import CompressionPolicy, PolicyStep
from slimnas.spaces._space import TRAINING_KEYS, CompressionGenes, SearchSpace, sample_training
from slimnas.spaces._spec import Candidate, TrainSpec

__all__ = [
    "FAMILIES",
    "MAX_LAYERS",
    "MAX_VALUE",
    "TRAINING_KEYS",
    "BaseFamily",
    "Candidate",
    "CompressionGenes",
    "CompressionPolicy",
    "Draw",
    "Key",
    "Param",
    "PolicyStep",
    "SearchSpace",
    "TrainSpec",
    "arch_from_dict",
    "arch_to_dict",
    "get_family",
    "grid_of",
    "layer_count",
    "list_families",
    "parse_keys",
    "parse_param",
    "register_family",
    "sample_arch",
    "sample_training",
]
