"""Exports of a finished model, every one checked against eager outputs; ONNX Runtime sessions
and the graph rewrites deployable files get (lean, fp16 weights, payload accounting, the batch as
rows for 1-D CNNs).

Export formats plug in with :func:`register_export_format`; :func:`export_model` writes any of
them and verifies the file."""

from slimnas.export import (
    _coreml,  # noqa: F401 (registers the Core ML .mlpackage export format)
    _executorch,  # noqa: F401 (registers the ExecuTorch .pte export formats)
    _info,  # noqa: F401 (loaded as before)
    _int8,  # noqa: F401 (loaded as before)
    _layout,  # noqa: F401 (loaded as before)
    _onnx_formats,  # noqa: F401 (loaded as before)
    _ort_format,  # noqa: F401 (registers the .ort export format)
    _proto,  # noqa: F401 (loaded as before)
    _torch_formats,  # noqa: F401 (loaded as before)
)
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
from slimnas.export._onnx import ExportMismatchError, export_onnx
from slimnas.export._session import onnx_accuracy, predict
from slimnas.export._structure import structure

__all__ = [
    "EXPORT_FORMATS",
    "BaseExportFormat",
    "ExportContext",
    "ExportMismatchError",
    "ExportResult",
    "export_model",
    "export_onnx",
    "get_export_format",
    "list_export_formats",
    "onnx_accuracy",
    "predict",
    "register_export_format",
    "structure",
]
