"""Datasets by name: ``mnist1d`` and ``digits`` built in, ``.npz``/``.csv`` files by path."""

from slimnas.data import _builtin  # noqa: F401  (registers the built-ins)
from slimnas.data._base import DataSplits
from slimnas.data._registry import DATASETS, list_datasets, load_dataset, register_dataset

__all__ = ["DATASETS", "DataSplits", "list_datasets", "load_dataset", "register_dataset"]
