"""Quantization chosen by what the runtime makes faster, not assumed to help.

int8 is not always faster: for small layers, the quantize/dequantize steps around an integer
kernel cost more than the kernel saves (on the MNIST-1D paper CNN at batch 1, static int8 runs
slower than fp32 in ONNX Runtime). So a layer is made int8 only where the target's latency
table says its int8 kernel is faster, or where a byte budget cannot be met otherwise; the whole
file is then measured against fp32, and int8 is dropped if it does not pay off as a whole. The
int8 formats ONNX Runtime offers (QDQ, QOperator, dynamic) are timed side by side and the
fastest is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from slimnas.compress._base import WEIGHTED
from slimnas.compress._prune import executed_layers
from slimnas.compress._quantize import quantize_model
from slimnas.export._int8 import INT8_FORMATS, quantize_onnx
from slimnas.measure import LatencyPredictor, OpConfig
from slimnas.measure._latency import OnnxRuntimeLatency
from slimnas.measure._ops import model_ops

#: int8 must be at least this much faster (measured, whole file) to be kept for speed alone
SPEED_MARGIN = 0.02


def _calibration(calibration, input_shape) -> np.ndarray:
    if calibration is None:
        return np.random.default_rng(0).standard_normal((64, *input_shape)).astype(np.float32)
    x = calibration.detach().cpu().numpy() if isinstance(calibration, torch.Tensor) else np.asarray(calibration)
    return x[:512].astype(np.float32)


def time_file(data: bytes, input_shape: tuple[int, ...], *, batch: int, threads: int = 1, repeats: int = 200) -> dict:
    """Latency figures (:class:`slimnas.measure.LatencyStats` as a dict) of an ONNX file."""
    rt = OnnxRuntimeLatency(batch_size=batch, threads=threads, repeats=repeats, warmup=max(20, repeats // 10))
    return rt.measure_stats(data, input_shape).to_dict()


def compare_int8_formats(model: nn.Module, input_shape: tuple[int, ...], *, calibration=None,
                         batches: Sequence[int] = (1,), threads: int = 1, repeats: int = 200,
                         formats: Sequence[str] = INT8_FORMATS) -> dict:
    """Time the model's fp32 file against its int8 files in each format, at each batch size.

    Returns:
        ``{"batches": {b: {"fp32": ms, "qdq": ms, ...}}, "fastest": {b: format}, "int8_faster":
        {b: bool}, "bytes": {format: file bytes}}``; ``fastest`` is the fastest int8 format and
        ``int8_faster`` whether it beats fp32 at that batch.

    Example:
        >>> from slimnas.models import mnist1d_paper_cnn  # doctest: +SKIP
        >>> compare_int8_formats(mnist1d_paper_cnn(), (1, 40), batches=(1, 64))["fastest"]  # doctest: +SKIP
        {1: 'qdq', 64: 'qoperator'}
    """
    fp32 = quantize_model(model, input_shape, mode="fp32")
    calib = _calibration(calibration, input_shape)
    files = {"fp32": fp32, **{f: quantize_onnx(fp32, fmt=f, calibration=calib) for f in formats}}
    out: dict = {"batches": {}, "fastest": {}, "int8_faster": {}, "bytes": {k: len(v) for k, v in files.items()}}
    for b in batches:
        # interleaved rounds, so a change in the machine's load hits every format alike
        times: dict[str, list[float]] = {k: [] for k in files}
        for _ in range(3):
            for k, data in files.items():
                times[k].append(time_file(data, input_shape, batch=b, threads=threads, repeats=repeats // 3 + 1)
                                ["median_ms"])
        row = {k: float(np.median(v)) for k, v in times.items()}
        out["batches"][b] = row
        fastest = min(formats, key=lambda f: row[f])
        out["fastest"][b] = fastest
        out["int8_faster"][b] = row[fastest] < row["fp32"] * (1 - SPEED_MARGIN)
    return out


def layer_ops(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, OpConfig]:
    """Each weighted layer's operator (as a latency table keys it), by module name."""
    layers = [(n, m) for n, m in executed_layers(model, input_shape) if isinstance(m, WEIGHTED)]
    ops = [op for op in model_ops(model, input_shape) if op.op in ("conv1d", "conv2d", "linear")]
    weighted = [(n, m) for n, m in layers if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    if len(ops) != len(weighted):
        return {}
    return {n: op for (n, _), op in zip(weighted, ops, strict=True)}


@dataclass
class PrecisionChoice:
    """Per-layer precisions, the int8 format, and the measurements behind them."""

    layer_precision: dict[str, str]
    int8_format: str = "qdq"
    reason: str = ""
    per_layer: dict[str, dict] = field(default_factory=dict)
    measured: dict = field(default_factory=dict)

    @property
    def any_int8(self) -> bool:
        return any(p == "int8" for p in self.layer_precision.values())

    def to_dict(self) -> dict:
        return {"layer_precision": self.layer_precision, "int8_format": self.int8_format, "reason": self.reason,
                "per_layer": self.per_layer, "measured": self.measured}


def _weight_bytes(model: nn.Module, names: Sequence[str]) -> dict[str, int]:
    modules = dict(model.named_modules())
    return {n: sum(p.numel() for p in modules[n].parameters(recurse=False)) * 4 for n in names}


def choose_precision(model: nn.Module, input_shape: tuple[int, ...], *, predictor: LatencyPredictor | None = None,
                     batch: int = 1, threads: int = 1, calibration=None, bytes_limit: float | None = None,
                     repeats: int = 200) -> PrecisionChoice:
    """Per-layer fp32/int8 for ``model`` on the target: int8 where the table says the layer's
    int8 kernel is faster (all layers alike without a table with an int8 column), plus the
    largest layers where ``bytes_limit`` needs int8 weights; then the whole file, in the fastest
    int8 format, is measured against fp32 here and int8 kept only if it is faster or needed.
    """
    names = [n for n, m in executed_layers(model, input_shape) if isinstance(m, WEIGHTED)]
    ops = layer_ops(model, input_shape)
    per_layer: dict[str, dict] = {}
    chosen = dict.fromkeys(names, "fp32")
    table_says = predictor is not None and predictor.supports(batch, "int8") and bool(ops)
    if table_says:
        for n in names:
            op = ops.get(n)
            if op is None:
                continue
            f = predictor.table.lookup(op, batch, "fp32")[0]
            q = predictor.table.lookup(op, batch, "int8")[0]
            per_layer[n] = {"fp32_ms": round(f, 6), "int8_ms": round(q, 6)}
            if q < f * (1 - SPEED_MARGIN):
                chosen[n] = "int8"
    else:
        chosen = dict.fromkeys(names, "int8")  # decided below by timing the whole file
    reason = "table" if table_says else "whole-file timing"
    needed: set[str] = set()
    if bytes_limit is not None:
        fp32_size = len(quantize_model(model, input_shape, mode="fp32"))
        saving = _weight_bytes(model, names)
        excess = fp32_size - bytes_limit
        for n in sorted(names, key=lambda n: -saving[n]):
            if excess <= 0:
                break
            needed.add(n)
            excess -= 0.75 * saving[n]
    formats = compare_int8_formats(model, input_shape, calibration=calibration, batches=(batch,), threads=threads,
                                   repeats=repeats, formats=("qdq", "qoperator"))
    fmt = formats["fastest"][batch]
    calib = torch.from_numpy(_calibration(calibration, input_shape))
    candidate = {n: ("int8" if chosen[n] == "int8" or n in needed else "fp32") for n in names}
    measured = {"fp32_ms": formats["batches"][batch]["fp32"], "formats": formats["batches"][batch]}
    if any(p == "int8" for p in candidate.values()):
        data = quantize_model(model, input_shape, mode="fp32", calibration=calib, layer_precision=candidate,
                              int8_format=fmt)
        fp32 = quantize_model(model, input_shape, mode="fp32")
        # interleaved rounds, each read as a ratio, so a change in the machine's load hits both files alike
        rounds = [(time_file(data, input_shape, batch=batch, threads=threads, repeats=repeats // 2)["median_ms"],
                   time_file(fp32, input_shape, batch=batch, threads=threads, repeats=repeats // 2)["median_ms"])
                  for _ in range(4)]
        ms_q, ms_f = (float(np.median(v)) for v in zip(*rounds, strict=True))
        share = float(np.median([q / f for q, f in rounds]))
        measured.update(chosen_ms=ms_q, fp32_file_ms=ms_f, int8_share=round(share, 4))
        if share >= 1 - SPEED_MARGIN and not needed:
            candidate = dict.fromkeys(names, "fp32")
            reason += ": int8 not faster as a whole file, kept fp32"
        elif needed and share >= 1 - SPEED_MARGIN:
            candidate = {n: ("int8" if n in needed else "fp32") for n in names}
            reason += ": int8 only where the byte budget needs it"
        else:
            reason += ": int8 faster"
    else:
        reason += ": no layer faster at int8"
    return PrecisionChoice(candidate, int8_format=fmt, reason=reason, per_layer=per_layer, measured=measured)
