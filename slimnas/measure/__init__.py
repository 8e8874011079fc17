"""Honest measurements: metrics by name (objectives and budgets share them), parameter and MAC
counts, file bytes, latency on a real runtime. Metrics plug in with :func:`register_metric`,
runtimes with ``RUNTIMES.register``."""

from slimnas.measure import (
    _bits,  # noqa: F401  (registers the bits metric)
    _bytes,  # noqa: F401 (loaded as before)
    _format,  # noqa: F401 (loaded as before)
    _machine,  # noqa: F401 (loaded as before)
    _memory,  # noqa: F401 (loaded as before)
    _metrics,  # noqa: F401  (registers the built-in metrics)
    _task_metrics,  # noqa: F401  (the tasks' metrics: r2, mean_ap, ...)
)
from slimnas.measure._counts import count_macs, count_params
from slimnas.measure._evaluate import Artifact, evaluate_artifact
from slimnas.measure._latency import (
    RUNTIMES,
    TIMES,
    BaseLatency,
    LatencyStats,
    interleaved_latency,
    random_inputs,
    register_runtime,
)
from slimnas.measure._metric import (
    METRICS,
    BaseMetric,
    Budget,
    MeasureContext,
    get_metric,
    list_metrics,
    measure_metrics,
    metric_label,
    register_metric,
)
from slimnas.measure._ops import OpConfig, one_thread
from slimnas.measure._predictor import LatencyPredictor, LatencyTable, Overhead, accuracy
from slimnas.measure._profile import (
    build_profile,
    check_profile,
    onthefly_predictor,
    profile_predictor,
    sample_architectures,
)

__all__ = [
    "Artifact",
    "evaluate_artifact",
    "ALIASES",
    "METRICS",
    "RUNTIMES",
    "TIMES",
    "BaseLatency",
    "BaseMetric",
    "Budget",
    "LatencyPredictor",
    "LatencyStats",
    "LatencyTable",
    "MeasureContext",
    "OpConfig",
    "Overhead",
    "accuracy",
    "build_profile",
    "check_profile",
    "interleaved_latency",
    "onthefly_predictor",
    "profile_predictor",
    "random_inputs",
    "register_runtime",
    "sample_architectures",
    "count_macs",
    "count_params",
    "get_metric",
    "list_metrics",
    "measure_metrics",
    "metric_label",
    "one_thread",
    "register_metric",
]
