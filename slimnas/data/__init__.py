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
from slimnas.data._base import DataSplits
from slimnas.data._formats import FORMATS, BaseFormat, register_format
from slimnas.data._loaders import unwrap
from slimnas.data._preprocess import Preprocessing
from slimnas.data._registry import (
    DATASETS,
    list_datasets,
    load_dataset,
    load_task_dataset,
    register_dataset,
)
from slimnas.data._stream import DiskArray, RowFile
from slimnas.data._tokenizers import TOKENIZERS, BaseTokenizer, list_tokenizers, register_tokenizer

__all__ = [
    "unwrap",
    "DATASETS",
    "FORMATS",
    "TOKENIZERS",
    "Augment",
    "BaseFormat",
    "BaseTokenizer",
    "DataSplits",
    "DiskArray",
    "Preprocessing",
    "RowFile",
    "list_datasets",
    "list_tokenizers",
    "load_dataset",
    "load_task_dataset",
    "register_dataset",
    "register_format",
    "register_tokenizer",
]
