"""ONNX export formats: fp32 and fp16 weights, and fp32 with 1-D convolutions laid out for batches
(:mod:`slimnas.export._layout`), one lean file each, run back in ONNX Runtime.
(``onnx-int8`` is registered by :mod:`slimnas.compress`, which owns static quantization.)"""

from __future__ import annotations

from pathlib import Path

import onnx

from slimnas.export._format import BaseExportFormat, register_export_format
from slimnas.export._layout import rows_where_possible
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


@register_export_format("onnx-fp32-rows")
class OnnxFp32Rows(OnnxFp32):
    """A 1-D CNN with the batch laid out as the rows of one image, so each convolution is one
    GEMM for the whole batch (:mod:`slimnas.export._layout`): 1.7x faster than ``onnx-fp32`` at
    batch 64 for the MNIST-1D paper CNN in ONNX Runtime on a CPU, slower at batch 1
    (``benchmarks/conv_overhead.py``). A model without 1-D convolutions is written as
    ``onnx-fp32`` (nothing to lay out), so a whole front exports with one format."""

    description = "one ONNX file, fp32, a 1-D CNN's convolutions one GEMM per batch (faster at batch > 1)"

    def proto(self, model, ctx) -> onnx.ModelProto:
        return lean(rows_where_possible(export_proto(model, ctx.input_shape, verify=False)))
