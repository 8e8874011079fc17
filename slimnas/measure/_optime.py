"""Timing one operator alone, as a latency table's entry: the operator as a one-node ONNX model
(built directly for the common operators, exported from its module for the rest), run in ONNX
Runtime with its input and output bound once (so the time is the operator's and the session
call's, not an output copy's), the median of many repeats.

A table entry is the operator's time over a session call that does nothing (:data:`NULL_OP`),
and at batch 1 that difference is a few microseconds: timed alone, one operator after another,
the machine's drift (a quarter within a second) moved it more than the operator does (the paper
CNN's middle convolution, at six channel counts from 25 to 8, read 0.5 to 4.9 us over the null
in three passes). So an operator not much slower than the null op is timed against it in
alternating bursts (:func:`time_over_null`), the median of the rounds' differences (2.4 to 3.1
us in the same passes)."""

from __future__ import annotations

import functools
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from slimnas.export import export_onnx
from slimnas.export._int8 import quantize_onnx
from slimnas.export._session import ort_session
from slimnas.measure._latency import random_inputs, time_calls
from slimnas.measure._ops import OpConfig

OPSET = 17
#: an operator's figure is timed over at least this many milliseconds of calls (a 5 us operator
#: timed 50 times lasts 0.25 ms; whole models: ``MIN_TIME_MS`` of :mod:`slimnas.measure._latency`)
MIN_OP_TIME_MS = 5.0
#: rounds of alternating bursts (operator, null op) an operator is timed in
PAIR_ROUNDS = 5
#: an operator is timed against the null op where, timed alone, it takes under this many times the
#: null op (its own share is small against the call's); a longer one keeps its time alone: the
#: pairing buys nothing there, and in bursts of a few calls each burst's first calls, after the
#: null op's, may run slow (with every operator paired, the MNIST-1D profile's batch-64
#: predictions within 15% read 65% in one run; a run without pairing in the same noisy hour
#: read 80%, and 100% on a quiet machine before)
PAIR_BELOW = 4.0
ACT_NODES = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
#: operators whose ``rows`` layout differs (the batch as the rows of one image, as the
#: ``onnx-fp32-rows`` export runs a 1-D CNN: a window of height 1 over ``(1, C, N, L)``, and
#: the global pooling after the transpose back to ``(N, C, L)``); element-wise operators cost
#: the same in either layout
ROWS_OPS = ("conv1d", "maxpool1d", "avgpool1d", "gap1d")


def _tensor(name: str, shape: tuple[int, ...], rng) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32), name)


def in_rows(op: OpConfig, layout: str) -> bool:
    """Whether ``op`` is timed on the batch laid out as rows (``layout="rows"``, a windowed 1-D op)."""
    return layout == "rows" and op.op in ROWS_OPS


def _window(values: list[int], rows: bool) -> list[int]:
    """A window's kernel, strides or dilations, with a leading 1 (the rows) in the rows layout."""
    return [1, *values] if rows else values


def _direct(op: OpConfig, layout: str = "plain") -> onnx.ModelProto | None:
    """The op as a one-node ONNX graph the way the exporter writes it (``rows``: as the
    ``onnx-fp32-rows`` export does), or ``None`` when the exporter must write it (recurrent
    layers, rarer activations)."""
    rng = np.random.default_rng(0)
    rows = in_rows(op, layout)
    nd = len(op.size)
    in_shape = [1, op.cin, "batch", *op.size] if rows else ["batch", *op.input_shape()]
    k = _window([op.kernel] * nd, rows)
    pads = [0, op.padding, 0, op.padding] if rows else [op.padding] * (2 * nd)
    nodes, inits, out = [], [], "y"
    if op.act and op.act not in ACT_NODES:
        return None
    act = ACT_NODES.get(op.act)
    core_out = "z" if act else out
    if op.op in ("conv1d", "conv2d"):
        w = (op.cout, op.cin // op.groups, *k)
        inits += [_tensor("w", w, rng), _tensor("b", (op.cout,), rng)]
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], [core_out], kernel_shape=k,
                                      strides=_window([op.stride] * nd, rows), pads=pads,
                                      dilations=_window([op.dilation] * nd, rows), group=op.groups))
    elif op.op == "linear":
        inits += [_tensor("w", (op.cout, op.cin), rng), _tensor("b", (op.cout,), rng)]
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], [core_out], transB=1))
    elif op.op in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
        kind = "MaxPool" if op.op.startswith("max") else "AveragePool"
        nodes.append(helper.make_node(kind, ["x"], [core_out], kernel_shape=k,
                                      strides=_window([op.stride] * nd, rows), pads=pads))
    elif op.op == "gap1d" and rows:  # the transpose back to (N, C, L), then the pooling
        inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0"))
        nodes += [helper.make_node("Squeeze", ["x", "axis0"], ["cnl"]),
                  helper.make_node("Transpose", ["cnl"], ["ncl"], perm=[1, 0, 2]),
                  helper.make_node("GlobalAveragePool", ["ncl"], [core_out])]
    elif op.op in ("gap1d", "gap2d"):
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], [core_out]))
    elif op.op in ("bn1d", "bn2d"):
        inits += [_tensor("s", (op.cin,), rng), _tensor("b", (op.cin,), rng), _tensor("m", (op.cin,), rng),
                  numpy_helper.from_array(rng.uniform(0.5, 1.5, op.cin).astype(np.float32), "v")]
        nodes.append(helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], [core_out]))
    elif op.op == "add":
        nodes.append(helper.make_node("Add", ["x", "x"], [core_out]))
    elif op.op in ACT_NODES:
        nodes.append(helper.make_node(ACT_NODES[op.op], ["x"], [core_out]))
    else:
        return None
    if act:
        nodes.append(helper.make_node(act, [core_out], [out]))
    graph = helper.make_graph(nodes, "op", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def op_model(op: OpConfig, layout: str = "plain") -> bytes:
    """The op alone as a serialized fp32 ONNX model with a dynamic batch axis (``rows``: the
    windowed 1-D ops on ``(1, C, N, L)``, see :func:`in_rows`)."""
    proto = _direct(op, layout)
    if proto is not None:
        return proto.SerializeToString()
    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(op.build(), Path(tmp) / "op.onnx", op.input_shape(), verify=False).read_bytes()


def _bound_call(model: bytes, input_shape: tuple[int, ...], *, batch: int, threads: int, provider: str = "cpu",
                rows: bool = False) -> Callable[[], object]:
    """One call of ``model`` on a batch (``rows``: laid out as ``(1, C, N, L)``), input and output
    bound once (IO binding)."""
    import onnxruntime as ort

    sess = ort_session(model, threads=threads, provider=provider)
    x = random_inputs(batch, input_shape)
    if rows:
        x = np.ascontiguousarray(x.transpose(1, 0, 2)[None])
    name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    y = sess.run(None, {name: x})[0]
    io = sess.io_binding()
    io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x))
    io.bind_ortvalue_output(out_name, ort.OrtValue.ortvalue_from_numpy(np.empty_like(y)))
    return lambda: sess.run_with_iobinding(io)


def time_onnx_bound(model: bytes, input_shape: tuple[int, ...], *, batch: int, threads: int = 1, warmup: int = 10,
                    repeats: int = 50, provider: str = "cpu", rows: bool = False) -> float:
    """Median ms of one call of ``model`` on a batch, input and output bound once (IO binding)."""
    call = _bound_call(model, input_shape, batch=batch, threads=threads, provider=provider, rows=rows)
    return statistics.median(time_calls(call, warmup=warmup, repeats=repeats, min_ms=MIN_OP_TIME_MS))


@functools.lru_cache(maxsize=8)
def _null_call(batch: int, threads: int) -> Callable[[], object]:
    return _bound_call(op_model(NULL_OP), NULL_OP.input_shape(), batch=batch, threads=threads)


def time_over_null(model: bytes, input_shape: tuple[int, ...], *, batch: int, threads: int = 1, repeats: int = 50,
                   rounds: int = PAIR_ROUNDS, rows: bool = False) -> float:
    """Ms ``model`` takes over the null op (:data:`NULL_OP`) at ``batch``: the two timed in
    alternating bursts (each at least ``MIN_OP_TIME_MS / rounds`` of calls, ``repeats`` calls in
    all), the median over ``rounds`` of each round's difference of burst medians."""
    call, null = _bound_call(model, input_shape, batch=batch, threads=threads, rows=rows), _null_call(batch, threads)
    per, min_ms = max(3, repeats // rounds), MIN_OP_TIME_MS / rounds
    for fn in (call, null):
        time_calls(fn, warmup=10, repeats=0, min_ms=min_ms)
    diffs = [statistics.median(time_calls(call, warmup=1, repeats=per, min_ms=min_ms))
             - statistics.median(time_calls(null, warmup=1, repeats=per, min_ms=min_ms)) for _ in range(rounds)]
    return float(statistics.median(diffs))


def time_op(op: OpConfig, *, batch: int, precision: str = "fp32", threads: int = 1, repeats: int = 50,
            model: bytes | None = None, null_ms: float | None = None, layout: str = "plain") -> float:
    """Median ms of ``op`` alone in ONNX Runtime at ``batch`` and ``precision`` (``fp32`` or
    ``int8``: static QDQ, which the runtime fuses into integer kernels). With ``null_ms`` (the
    null op's time), an op under :data:`PAIR_BELOW` times it is ``null_ms`` plus the op's time
    over the null op timed alongside it (:func:`time_over_null`). ``layout``: ``plain`` or
    ``rows`` (``model``, when given, built for it by :func:`op_model`)."""
    rows = in_rows(op, layout)
    model = model if model is not None else op_model(op, layout)
    if precision == "int8":
        model = quantize_onnx(model, fmt="qdq")
    elif precision != "fp32":
        raise ValueError(f"ONNX Runtime op timing supports fp32 and int8, not {precision}")
    alone = time_onnx_bound(model, op.input_shape(), batch=batch, threads=threads, repeats=repeats, rows=rows)
    if null_ms is None or alone > PAIR_BELOW * null_ms:
        return alone
    return null_ms + time_over_null(model, op.input_shape(), batch=batch, threads=threads, repeats=repeats, rows=rows)


NULL_OP = OpConfig("relu", 1, 1, (1,))


def time_null(*, batch: int, threads: int = 1, repeats: int = 200) -> float:
    """The cost of a session call around an op that does (almost) nothing: what every entry
    of a table includes besides its op."""
    return time_op(NULL_OP, batch=batch, precision="fp32", threads=threads, repeats=repeats)
