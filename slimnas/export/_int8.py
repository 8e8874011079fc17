"""Whole-file int8 conversion in ONNX Runtime's three formats, for timing and comparing them.

- ``qdq``: static int8, ``QuantizeLinear``/``DequantizeLinear`` pairs around float ops, which
  ONNX Runtime fuses into integer kernels at load time (the format ``slimnas.compress`` writes);
- ``qoperator``: static int8 written as integer operators (``QLinearConv``, ``QLinearMatMul``)
  directly;
- ``dynamic``: int8 weights of MatMul/Gemm (and LSTM) layers, activations quantized per batch at
  run time; convolutions stay fp32.

Which one is fastest depends on the runtime build, the processor and the batch size, so a
choice between them is measured, not assumed (:func:`slimnas.compress.compare_int8_formats`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from slimnas.errors import ConfigError
from slimnas.export._proto import gemm_to_matmul

INT8_FORMATS = ("qdq", "qoperator", "dynamic")


class _Advice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "/onnxruntime/quantization/" not in record.pathname.replace("\\", "/")


@contextlib.contextmanager
def _quiet():
    root, advice = logging.getLogger(), _Advice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _input_shape(proto: onnx.ModelProto) -> tuple[int, ...]:
    dims = proto.graph.input[0].type.tensor_type.shape.dim[1:]
    return tuple(int(d.dim_value) for d in dims)


@functools.cache
def int8_saturates() -> bool:
    """Whether ONNX Runtime's uint8 x int8 kernels can saturate on this machine: x86-64 without
    VNNI (AVX2, or AVX-512 without VNNI) sums pairs of products in 16 bits (``vpmaddubsw``), and
    ``255 * 127 * 2`` overflows it, which costs a convolution-heavy model tens of points of accuracy.
    Weights on a 7-bit grid (``reduce_range``) keep the sum in range; VNNI, AMX and ARM kernels
    accumulate in 32 bits and need no such cut."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False  # not Linux: no cheap way to tell, keep the full 8-bit grid
    return not any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def int8_weight_max() -> int:
    """The largest int8 weight magnitude the quantized files use here: 64 on the 7-bit grid
    :func:`int8_saturates` calls for, else 127."""
    return 64 if int8_saturates() else 127


def _random_feed(proto: onnx.ModelProto, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` stand-in samples of every graph input: standard-normal floats, zeros for integer
    inputs (token id 0 is in every vocabulary) and ones for boolean ones (masks)."""
    rng, inits, feed = np.random.default_rng(seed), {i.name for i in proto.graph.initializer}, {}
    for v in proto.graph.input:
        if v.name in inits:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        shape = (n, *(int(d.dim_value) or 1 for d in v.type.tensor_type.shape.dim[1:]))
        feed[v.name] = (rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                        else np.ones(shape, dtype) if dtype == np.bool_ else np.zeros(shape, dtype))
    return feed


def quantize_onnx(model: bytes | str | Path | onnx.ModelProto, *, fmt: str = "qdq",
                  calibration: np.ndarray | Mapping[str, np.ndarray] | None = None, per_channel: bool = True,
                  seed: int = 0,
                  reduce_range: bool | None = None) -> bytes:
    """An fp32 ONNX model converted to int8 in format ``fmt`` (``qdq``, ``qoperator`` or ``dynamic``).

    Args:
        calibration: samples (``(n, *input_shape)``) for the activation ranges of static formats,
            or, for a file with several inputs, samples of each by input name; without them,
            standard-normal samples stand in (zeros for integer inputs), which gives the right
            kernels and file size (what timing needs) but not a calibrated model (what accuracy
            needs).
        reduce_range: weights on a 7-bit grid; ``None``: where :func:`int8_saturates`.

    Example:
        >>> import torch
        >>> from slimnas.export._onnx import export_proto
        >>> len(quantize_onnx(export_proto(torch.nn.Linear(8, 4), (8,)), fmt="dynamic")) > 0
        True
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if fmt not in INT8_FORMATS:
        raise ConfigError("int8_format", f"one of {list(INT8_FORMATS)}", fmt)
    if isinstance(model, onnx.ModelProto):
        proto = model
    elif isinstance(model, bytes):
        proto = onnx.load_from_string(model)
    else:
        proto = onnx.load(str(model))
    if reduce_range is None:
        reduce_range = int8_saturates()
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        if fmt == "dynamic":
            onnx.save(gemm_to_matmul(proto), str(src))
            quantize_dynamic(str(src), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8,
                             reduce_range=reduce_range, op_types_to_quantize=["MatMul", "LSTM"])
            return dst.read_bytes()
        onnx.save(proto, str(src))
        if calibration is None and len(proto.graph.input) == 1:
            calibration = np.random.default_rng(seed).standard_normal((64, *_input_shape(proto))).astype(np.float32)
        elif calibration is None:
            calibration = _random_feed(proto, 64, seed)
        if not isinstance(calibration, Mapping):
            calibration = {proto.graph.input[0].name: np.asarray(calibration, dtype=np.float32)}
        n = len(next(iter(calibration.values())))
        batches = [{k: np.asarray(v[i : i + 64]) for k, v in calibration.items()} for i in range(0, n, 64)]

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.it = iter(batches)

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(src), str(dst), Reader(),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        reduce_range=reduce_range, extra_options={"WeightSymmetric": True})
        return dst.read_bytes()


INT8_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
            "ConvInteger", "DynamicQuantizeLinear", "QGemm", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"}


def file_precision(model: bytes | str | Path) -> str:
    """``int8`` when the file holds integer or quantize operators, ``fp16`` when its weights are
    half precision, else ``fp32``: what a latency measured on it is labelled with."""
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model), load_external_data=False)
    if any(n.op_type in INT8_OPS for n in proto.graph.node):
        return "int8"
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer):
        return "fp16"
    return "fp32"
