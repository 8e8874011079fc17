"""The ``ort`` export format: ONNX Runtime Mobile's ``.ort`` file (ORT format, a FlatBuffer), the
format ONNX Runtime's mobile and minimal builds load, written by ONNX Runtime's own converter
(``onnxruntime.tools.convert_onnx_models_to_ort``) from the lean fp32 ONNX file and read back by
an ONNX Runtime session.

The converter applies ONNX Runtime's graph optimizations before it saves ("fixed" style), leaving
out the x86-only NCHWc layout so the file runs on ARM phones as well; constant subgraphs are
folded, so the file holds what the session runs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import onnx

from slimnas.export._format import register_export_format
from slimnas.export._onnx_formats import OnnxFp32
from slimnas.export._session import predict


@contextlib.contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def onnx_to_ort(proto: onnx.ModelProto, path: Path) -> Path:
    """Convert ``proto`` to an ``.ort`` file at ``path`` with ONNX Runtime's converter."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "model.onnx", Path(tmp) / "out"
        onnx.save(proto, str(src))
        with contextlib.redirect_stdout(io.StringIO()), _quiet("ort_format_model.utils"):  # its progress lines
            convert_onnx_models_to_ort(src, output_dir=out, optimization_styles=[OptimizationStyle.Fixed])
        written = sorted(out.glob("*.ort"))
        if len(written) != 1:
            raise RuntimeError(f"ONNX Runtime's converter wrote {[p.name for p in written]}, not one .ort file")
        path.write_bytes(written[0].read_bytes())
    return path


@register_export_format("ort")
class OrtMobile(OnnxFp32):
    """ONNX Runtime Mobile's ``.ort`` file, fp32, checked by running it in ONNX Runtime."""

    description = "ONNX Runtime Mobile .ort file (ONNX Runtime's converter), fp32; loads in ONNX Runtime sessions"
    suffix = ".ort"
    atol = 1e-4

    def write(self, model, path: Path, ctx) -> None:
        onnx_to_ort(self.proto(model, ctx), path)

    def run(self, path: Path, x, ctx):
        return predict(path, x)
