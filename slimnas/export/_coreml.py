"""The ``coreml`` export format: a Core ML ``.mlpackage`` (an ML program, iOS 18 / macOS 15) written by
coremltools from the ``torch.export`` program, with fp16 weights and arithmetic (what the Neural
Engine runs), batch 1.

(A model with an operator coremltools' ``torch.export`` frontend does not convert, such as a GRU,
goes through its TorchScript frontend instead.)

Palettized weights are carried over: a layer whose weights hold few distinct values (after
``compress --quantize paletteN``, or a ``cluster`` step) is written as Core ML's lookup-table
palettization (``constexpr_lut_to_dense``: packed n-bit indices plus the table, one table per
tensor, per group of output channels (``palette`` with ``granularity=group``) or per output
channel, whichever the layer's values need and is smallest), so the file on
disk keeps the palette's size. The table holds the layer's own values (coremltools' ``unique``
mode: nothing is re-clustered), rounded to fp16. Core ML's palettes have 1, 2, 3, 4, 6 or 8 bits:
a 5-bit palette is stored with 6-bit indices, a 7-bit one with 8.

Core ML predictions run on macOS and iOS only, so this file cannot be run here: the export checks
the written package instead (:meth:`CoreML.inspect`: it loads back as an ML program whose input
and output shapes are the model's) and reports no output difference.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from slimnas.export._executorch import quiet_native, require
from slimnas.export._format import BaseExportFormat, register_export_format
from slimnas.export._onnx import ExportMismatchError

INSTALL = "pip install 'slimnas[edge]', or pip install coremltools"
CORE_ML_BITS = (1, 2, 3, 4, 6, 8)  # the palette sizes Core ML's constexpr_lut_to_dense takes
WEIGHTS = Path("Data") / "com.apple.CoreML" / "weights" / "weight.bin"
SPEC = Path("Data") / "com.apple.CoreML" / "model.mlmodel"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools' progress bars (tqdm, on stderr) and its version warnings (logging)."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with quiet_native():
            yield
    finally:
        logger.setLevel(level)


def palette_of(w: np.ndarray) -> tuple[str, int, int] | None:
    """How Core ML should hold the weight ``w`` (``(out, ...)``): ``(granularity, bits,
    group_size)``, with granularity ``tensor``, ``group`` (one table per ``group_size`` output
    channels, a divisor of ``out``: a grouped palette) or ``channel``, when its distinct values
    fit a lookup table that makes the layer smaller than fp16, else ``None`` (dense fp16)."""
    if w.ndim < 2 or w.size < 2:
        return None
    rows = w.reshape(w.shape[0], -1)
    c = rows.shape[0]

    def bits_for(n_values: int) -> int | None:
        return next((b for b in CORE_ML_BITS if n_values <= 1 << b), None)

    options = []
    for group in [c] + [g for g in range(c // 2, 1, -1) if c % g == 0] + [1]:
        b = bits_for(max(len(np.unique(rows[i : i + group])) for i in range(0, c, group)))
        if b is not None:  # indices + one fp16 table per group
            granularity = "tensor" if group == c else "channel" if group == 1 else "group"
            options.append((w.size * b / 8 + c // group * (2 << b), -group, granularity, b, group))
    best = min(options, default=None)
    return None if best is None or best[0] >= 2 * w.size else best[2:]


def to_mlpackage(model: torch.nn.Module, ctx, path: Path) -> dict[str, str]:
    """Convert ``model`` (batch 1) to an ML program at ``path``; palettized layers keep their
    tables. Returns ``{weight const: how it is held}`` for the palettized ones."""
    with _quiet():
        import coremltools as ct
        from coremltools.optimize.coreml import (
            OpPalettizerConfig,
            OptimizationConfig,
            palettize_weights,
        )

        example = torch.zeros(1, *ctx.input_shape)
        options = dict(convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                       inputs=[ct.TensorType(name="input", shape=(1, *ctx.input_shape))])
        try:
            mlmodel = ct.convert(torch.export.export(model, (example,)).run_decompositions({}), **options)
        except NotImplementedError:  # an operator its torch.export frontend lacks (a GRU): TorchScript's has more
            with torch.no_grad():
                mlmodel = ct.convert(torch.jit.trace(model, example), **options)
        held, configs = {}, {}
        for op in mlmodel._mil_program.functions["main"].find_ops(op_type="const"):
            value = op.val.val
            found = palette_of(value) if isinstance(value, np.ndarray) else None
            if found is not None:
                granularity, bits, group = found
                held[op.name] = f"palette{bits} per {granularity}" + (f" of {group} channels" if granularity == "group" else "")
                configs[op.name] = OpPalettizerConfig(
                    mode="unique", weight_threshold=0,
                    **({"granularity": "per_grouped_channel", "group_size": group} if granularity != "tensor" else {}))
        if configs:
            mlmodel = palettize_weights(mlmodel, OptimizationConfig(op_name_configs=configs))
        mlmodel.save(str(path))
    return held


def read_program(path: Path):
    """The ML program of the package at ``path`` (coremltools' MIL), read back from its files."""
    with _quiet():
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load

        spec = ct.utils.load_spec(str(path))
        return spec, load(spec, spec.specificationVersion, file_weights_dir=str(path / WEIGHTS.parent))


@register_export_format("coreml")
class CoreML(BaseExportFormat):
    """Core ML ``.mlpackage`` (ML program, fp16, batch 1), palettized layers kept as lookup tables;
    checked here by its structure (Core ML predicts on Apple platforms only)."""

    description = ("Core ML .mlpackage (coremltools), fp16, batch 1, palettized weights kept as lookup tables; "
                   "structure checked here (predictions need macOS/iOS)")
    suffix = ".mlpackage"
    package = True
    runs_here = False
    atol = 1e-2  # what an fp16 program is held to where it runs
    requires = "coremltools"

    def check(self) -> None:
        require(self.requires, self.name, INSTALL)

    def write(self, model, path: Path, ctx) -> None:
        to_mlpackage(model, ctx, path)

    def run(self, path: Path, x, ctx):
        raise NotImplementedError("Core ML predictions run on macOS and iOS only")

    def inspect(self, path: Path, expected: np.ndarray, ctx) -> None:
        """The package loads back as an ML program taking one sample of the input shape and
        returning one row of the model's outputs, its weights stored in the package."""
        try:
            spec, program = read_program(path)
        except Exception as e:  # noqa: BLE001 (whatever coremltools raises on a broken package)
            raise ExportMismatchError(f"{path}: the Core ML package does not load back ({e})") from None
        (inp,), (out,) = spec.description.input, spec.description.output
        got_in = tuple(inp.type.multiArrayType.shape)
        got_out = tuple(out.type.multiArrayType.shape)
        want_out = (1, *expected.shape[1:])
        if got_in != (1, *ctx.input_shape) or math.prod(got_out) != math.prod(want_out):
            raise ExportMismatchError(f"{path}: the Core ML program maps {got_in} to {got_out}, not "
                                      f"{(1, *ctx.input_shape)} to {want_out}")
        if not program.functions["main"].operations:
            raise ExportMismatchError(f"{path}: the Core ML program is empty")

    def outputs(self, path: Path, ctx) -> list[Path]:
        return [path / "Manifest.json", path / "Data"]
