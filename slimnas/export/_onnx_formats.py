"""ONNX export formats: fp32 and fp16 weights, one lean file each, run back in ONNX Runtime.
(``onnx-int8`` is registered by :mod:`slimnas.compress`, which owns static quantization.)"""

from __future__ import annotations

from pathlib import Path

import onnx

from slimnas.export._format import BaseExportFormat, register_export_format
from slimnas.export._onnx import export_proto
from slimnas.export._proto import fp16_weights, lean
from slimnas.export._session import predict


@register_export_format("onnx-fp32")
class OnnxFp32(BaseExportFormat):
    description = "one ONNX file, fp32 weights (input 'input', output 'logits', dynamic batch)"
    suffix = ".onnx"
    atol = 1e-4

    def proto(self, model, ctx) -> onnx.ModelProto:
        return lean(export_proto(model, ctx.input_shape, verify=False))

    def write(self, model, path: Path, ctx) -> None:
        onnx.save(self.proto(model, ctx), str(path))

    def run(self, path: Path, x, ctx):
        return predict(path, x)


@register_export_format("onnx-fp16")
class OnnxFp16(OnnxFp32):
    """Weights stored as fp16 and cast back on load: half the file, fp32 arithmetic (ONNX
    Runtime has few fp16 kernels on CPUs)."""

    description = "one ONNX file, fp16 weights (half the size; fp32 arithmetic)"
    atol = 1e-2  # fp16 keeps 11 significant bits of every weight

    def proto(self, model, ctx) -> onnx.ModelProto:
        return lean(fp16_weights(export_proto(model, ctx.input_shape, verify=False)))
