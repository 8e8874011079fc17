"""The ``onnx-int8`` export format: static int8 quantization (QDQ, per-channel weights),
calibrated on training samples. It lives here, not in :mod:`slimnas.export`, because static
quantization does (:func:`quantize_model`)."""

from __future__ import annotations

from pathlib import Path

from slimnas.compress._quantize import N_CALIBRATION, quantize_model
from slimnas.export import register_export_format
from slimnas.export._onnx_formats import OnnxFp32


@register_export_format("onnx-int8")
class OnnxInt8(OnnxFp32):
    """int8 changes every output a little by design, so the file is checked by how often its
    top-1 class agrees with the eager model's on real inputs, not by a tolerance."""

    description = "one ONNX file, static int8 (QDQ, per-channel), calibrated on training samples"
    calibrated = True
    atol = None
    min_agreement = 0.9

    def write(self, model, path: Path, ctx) -> None:
        path.write_bytes(quantize_model(model, ctx.input_shape, mode="int8", calibration=ctx.calibration[:N_CALIBRATION]))
