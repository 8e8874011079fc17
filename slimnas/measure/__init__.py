"""Honest measurements: metrics by name (objectives and budgets share them), parameter and MAC
counts, file bytes, latency on a real runtime. Metrics plug in with :func:`register_metric`,
runtimes with ``RUNTIMES.register``."""

from slimnas.measure import _metrics  # noqa: F401  (registers the built-in metrics)
from slimnas.measure._bytes import onnx_bytes, weight_bytes
from slimnas.measure._counts import count_macs, count_params
from slimnas.measure._format import fmt_count
from slimnas.measure._latency import (
    RUNTIMES,
    BaseLatency,
    Latency,
    OnnxRuntimeLatency,
    TorchLatency,
)
from slimnas.measure._metric import (
    ALIASES,
    METRICS,
    BaseMetric,
    Budget,
    MeasureContext,
    get_metric,
    list_metrics,
    measure_metrics,
    parse_objectives,
    register_metric,
    signed,
)

__all__ = [
    "ALIASES",
    "METRICS",
    "RUNTIMES",
    "BaseLatency",
    "BaseMetric",
    "Budget",
    "Latency",
    "MeasureContext",
    "OnnxRuntimeLatency",
    "TorchLatency",
    "count_macs",
    "count_params",
    "fmt_count",
    "get_metric",
    "list_metrics",
    "measure_metrics",
    "onnx_bytes",
    "parse_objectives",
    "register_metric",
    "signed",
    "weight_bytes",
]
