"""Search spaces: config choices -> frozen candidates (define-by-run with Optuna).

Architecture families register here (:func:`register_family`); the built-in ones are
:mod:`slimnas.models` files. Compression genes are declared by :mod:`slimnas.compress`.
"""

from slimnas.spaces._family import (
    FAMILIES,
    BaseFamily,
    arch_from_dict,
    get_family,
    list_families,
    register_family,
)
from slimnas.spaces._params import Key, Param
from slimnas.spaces._policy import CompressionPolicy, PolicyStep
from slimnas.spaces._space import TRAINING_KEYS, CompressionGenes, SearchSpace
from slimnas.spaces._spec import TrainSpec

__all__ = [
    "FAMILIES",
    "TRAINING_KEYS",
    "BaseFamily",
    "CompressionGenes",
    "CompressionPolicy",
    "Key",
    "Param",
    "PolicyStep",
    "SearchSpace",
    "TrainSpec",
    "arch_from_dict",
    "get_family",
    "list_families",
    "register_family",
]
