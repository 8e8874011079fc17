"""Datasets by name (``mnist1d`` and ``digits`` built in) and data files by path, read by a
registered format (``.npz``, ``.csv``). Datasets plug in with :func:`register_dataset`,
formats with :func:`register_format`."""

from slimnas.data import _builtin  # noqa: F401  (registers the built-ins)
from slimnas.data._base import DataSplits, make_splits, stratified_split
from slimnas.data._formats import (
    FORMATS,
    BaseFormat,
    CsvFormat,
    NpzFormat,
    file_suffixes,
    format_for,
    register_format,
)
from slimnas.data._registry import DATASETS, list_datasets, load_dataset, register_dataset

__all__ = [
    "DATASETS",
    "FORMATS",
    "BaseFormat",
    "CsvFormat",
    "DataSplits",
    "NpzFormat",
    "file_suffixes",
    "format_for",
    "list_datasets",
    "load_dataset",
    "make_splits",
    "register_dataset",
    "register_format",
    "stratified_split",
]
