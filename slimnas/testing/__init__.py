"""Conformance checks every registry entry passes, run from the registries themselves (as
``optuna.testing`` and scikit-learn's ``check_estimator``): a new strategy, compressor, metric,
architecture family, data format, export format, task, latency runtime or pruning importance is tested by
this code, without tests of its own.

Example:
    >>> from slimnas.testing import check_compressor
    >>> check_compressor("prune")  # doctest: +SKIP
    {'residual_cnn': 'reference', 'mlp': 'reference', 'gru': 'reference', 'paper_cnn': 'reference'}
"""

from slimnas.testing._compressors import check_compressor
from slimnas.testing._export_formats import check_export_format
from slimnas.testing._families import check_family
from slimnas.testing._fixtures import SHAPE, TINY_MODELS, tiny_data
from slimnas.testing._formats import check_data_format
from slimnas.testing._importances import check_importance
from slimnas.testing._metrics import check_metric
from slimnas.testing._runtimes import check_runtime
from slimnas.testing._strategies import SyntheticObjective, check_strategy, synthetic_splits
from slimnas.testing._tasks import check_task

__all__ = [
    "SHAPE",
    "TINY_MODELS",
    "SyntheticObjective",
    "check_compressor",
    "check_data_format",
    "check_export_format",
    "check_family",
    "check_importance",
    "check_metric",
    "check_runtime",
    "check_strategy",
    "check_task",
    "synthetic_splits",
    "tiny_data",
]
