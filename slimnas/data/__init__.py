"""Datasets by name (``mnist1d``, ``digits``, ``digits-images``, ``shapes32``, ``text``,
``wine``, ``breast-cancer`` built in) and data files or folders by path, read by a registered
format (``.npz``, ``.csv``, a folder of images per class, a folder of ``.npy`` files).
Datasets plug in with :func:`register_dataset`, formats with :func:`register_format`,
tokenizers with :func:`register_tokenizer`.

What the model developer uses: :func:`load_dataset` returns :class:`DataSplits`, whose
``kind`` (``tabular``/``sequence``/``image``/``text``), ``input_shape``, ``n_classes`` and,
for text, ``vocab_size`` and ``pad_id`` size a model; ``augment`` goes to
``training.fit(..., augment=...)``; ``preprocessing`` (and :meth:`DataSplits.info`) is saved
with the run.
"""

from slimnas.data import _builtin, _folders  # noqa: F401  (registers the built-ins)
from slimnas.data._augment import Augment
from slimnas.data._base import DataSplits, make_splits, stratified_split
from slimnas.data._formats import (
    FORMATS,
    BaseFormat,
    CsvFormat,
    NpzFormat,
    file_suffixes,
    folder_formats,
    format_for,
    register_format,
)
from slimnas.data._preprocess import INPUT_LAYOUTS, KINDS, Preprocessing
from slimnas.data._registry import (
    DATASETS,
    STREAM_AUTO_BYTES,
    dataset_help,
    list_datasets,
    load_dataset,
    load_task_dataset,
    register_dataset,
)
from slimnas.data._stream import DiskArray, RowFile
from slimnas.data._tokenizers import (
    TOKENIZERS,
    BaseTokenizer,
    HuggingFaceTokenizer,
    WordTokenizer,
    build_tokenizer,
    list_tokenizers,
    register_tokenizer,
    tokenizer_from_state,
)

__all__ = [
    "DATASETS",
    "FORMATS",
    "INPUT_LAYOUTS",
    "KINDS",
    "STREAM_AUTO_BYTES",
    "TOKENIZERS",
    "Augment",
    "BaseFormat",
    "BaseTokenizer",
    "CsvFormat",
    "DataSplits",
    "DiskArray",
    "HuggingFaceTokenizer",
    "NpzFormat",
    "Preprocessing",
    "RowFile",
    "WordTokenizer",
    "build_tokenizer",
    "dataset_help",
    "file_suffixes",
    "folder_formats",
    "format_for",
    "list_datasets",
    "list_tokenizers",
    "load_dataset",
    "load_task_dataset",
    "make_splits",
    "register_dataset",
    "register_format",
    "register_tokenizer",
    "stratified_split",
    "tokenizer_from_state",
]
