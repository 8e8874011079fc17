"""Exports of a finished model, every one checked against eager outputs; ONNX Runtime sessions
and the graph rewrites deployable files get (lean, fp16 weights, payload accounting)."""

from slimnas.export._onnx import (
    ExportMismatchError,
    export_onnx,
    export_proto,
    inference_copy,
    verify_onnx,
)
from slimnas.export._proto import (
    fp16_weights,
    gemm_to_matmul,
    layer_nodes,
    lean,
    payload_bytes,
    size_report,
)
from slimnas.export._session import max_abs_diff, onnx_accuracy, ort_session, predict
from slimnas.export._structure import load_compressed, save_compressed, structure

__all__ = [
    "ExportMismatchError",
    "export_onnx",
    "export_proto",
    "fp16_weights",
    "gemm_to_matmul",
    "inference_copy",
    "layer_nodes",
    "lean",
    "load_compressed",
    "max_abs_diff",
    "onnx_accuracy",
    "ort_session",
    "payload_bytes",
    "predict",
    "save_compressed",
    "size_report",
    "structure",
    "verify_onnx",
]
