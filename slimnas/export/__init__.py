"""Exports of a finished model, every one checked against eager outputs; ONNX Runtime sessions
and the graph rewrites deployable files get (lean, fp16 weights, payload accounting, the batch as
rows for 1-D CNNs).

Export formats plug in with :func:`register_export_format`; :func:`export_model` writes any of
them and verifies the file."""

from slimnas.export._format import (
    EXPORT_FORMATS,
    BaseExportFormat,
    ExportContext,
    ExportResult,
    export_model,
    get_export_format,
    list_export_formats,
    register_export_format,
)
from slimnas.export._info import INFO, read_run_info, write_run_info
from slimnas.export._int8 import (
    INT8_FORMATS,
    file_precision,
    int8_saturates,
    int8_weight_max,
    quantize_onnx,
)
from slimnas.export._layout import batch_as_rows, has_1d_convolutions, rows_where_possible
from slimnas.export._onnx import (
    ExportMismatchError,
    export_onnx,
    export_proto,
    inference_copy,
    verify_onnx,
)
from slimnas.export._onnx_formats import OnnxFp16, OnnxFp32, OnnxFp32Rows
from slimnas.export._ort_format import OrtMobile, onnx_to_ort
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
from slimnas.export._torch_formats import StateDictFormat, TorchExportFormat, TorchScriptFormat

__all__ = [
    "EXPORT_FORMATS",
    "INFO",
    "INT8_FORMATS",
    "BaseExportFormat",
    "ExportContext",
    "ExportMismatchError",
    "ExportResult",
    "OnnxFp16",
    "OnnxFp32",
    "OnnxFp32Rows",
    "OrtMobile",
    "StateDictFormat",
    "TorchExportFormat",
    "TorchScriptFormat",
    "batch_as_rows",
    "export_model",
    "export_onnx",
    "export_proto",
    "file_precision",
    "fp16_weights",
    "gemm_to_matmul",
    "get_export_format",
    "has_1d_convolutions",
    "inference_copy",
    "int8_saturates",
    "int8_weight_max",
    "layer_nodes",
    "lean",
    "list_export_formats",
    "load_compressed",
    "max_abs_diff",
    "onnx_accuracy",
    "onnx_to_ort",
    "ort_session",
    "payload_bytes",
    "predict",
    "quantize_onnx",
    "read_run_info",
    "register_export_format",
    "rows_where_possible",
    "save_compressed",
    "size_report",
    "structure",
    "verify_onnx",
    "write_run_info",
]
