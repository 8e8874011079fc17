"""Honest measurements: parameters, MACs, file bytes, latency on a real runtime, accuracy."""

from slimnas.measure._bytes import onnx_bytes, weight_bytes
from slimnas.measure._counts import count_macs, count_params
from slimnas.measure._latency import (
    RUNTIMES,
    BaseLatency,
    OnnxRuntimeLatency,
    TorchLatency,
    ort_session,
)

__all__ = [
    "RUNTIMES",
    "BaseLatency",
    "OnnxRuntimeLatency",
    "TorchLatency",
    "count_macs",
    "count_params",
    "onnx_bytes",
    "ort_session",
    "weight_bytes",
]
