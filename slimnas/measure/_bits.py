"""Effective bits per weight of a deployed file, read from the file itself (the ``bits`` metric).

Every operator of the ONNX graph that multiplies by a stored weight (``Conv``, ``Gemm``,
``MatMul``, their int8 forms ``QLinearConv``/``QGemm``/``MatMulInteger``/``ConvInteger``,
``MatMulNBits``, a recurrent layer's ``W`` and ``R``, an embedding's ``Gather``) is a layer. Its
weight is computed from constants only: the fp32 or fp16 tensor itself, or int8 values and their
scales through ``DequantizeLinear``, or bit-packed codes plus a lookup table and per-block scales
through the subgraph that unpacks them. The bytes of those constants are the layer's weight
bytes, and the layer's bits are ``8 x weight bytes / weights`` (its weight tensor's elements).

``bits`` is the weighted mean over weights, ``8 x (every layer's weight bytes) / (every layer's
weights)``, so what a format stores beside the codes is amortised over the weights it serves:
int8 with one fp32 scale per output channel of L weights is ``8 + 32 / L`` bits, int4 with one
fp32 scale per 32 weights ``4 + 1 = 5``, a 4-bit palette with one 16-entry fp16 table per layer of
n weights ``4 + 256 / n`` (one table per output channel: ``4 + 256 / L``), fp16 16, fp32 32.
Biases, batch norms and the activations' quantization parameters are not weights and are not
counted; a constant several layers' unpacking shares (a shift amount) is counted once; a layer
whose weight's shape ONNX's shape inference cannot give is left out of both sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from slimnas.errors import ConfigError
from slimnas.export._proto import tensor_nbytes
from slimnas.measure._metric import PLAIN_UNITS, BaseMetric, register_metric

#: op type -> (inputs holding the weight's values, inputs holding what goes with them: scales, zero points)
WEIGHTED_OPS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "Conv": ((1,), ()), "ConvTranspose": ((1,), ()), "Gemm": ((1,), ()), "MatMul": ((1,), ()),
    "QLinearConv": ((3,), (4, 5)), "QLinearMatMul": ((3,), (4, 5)), "QGemm": ((3,), (4, 5)),
    "MatMulInteger": ((1,), (3,)), "ConvInteger": ((1,), (3,)), "DynamicQuantizeMatMul": ((1,), (2, 3)),
    "MatMulNBits": ((1,), (2, 3)), "LSTM": ((1, 2), ()), "GRU": ((1, 2), ()), "RNN": ((1, 2), ()),
    "Gather": ((0,), ()),
}


@dataclass(frozen=True)
class LayerBits:
    """One weighted operator of a file: its type, weights, the bytes they are stored in, and bits."""

    op: str
    weights: int
    weight_bytes: int

    @property
    def bits(self) -> float:
        return 8.0 * self.weight_bytes / self.weights if self.weights else 0.0


def _tensor_bytes(t: onnx.TensorProto) -> int:
    """Bytes of a stored tensor's values (its serialized size where numpy cannot read it)."""
    try:
        return tensor_nbytes(t)
    except Exception:  # noqa: BLE001 - a type numpy has no array for: count what the file holds
        return len(t.SerializeToString())


def _load(onnx_file: bytes | str | Path) -> onnx.ModelProto:
    if isinstance(onnx_file, bytes):
        return onnx.ModelProto.FromString(onnx_file)
    return onnx.load(str(onnx_file))


def layer_bits(onnx_file: bytes | str | Path) -> list[LayerBits]:
    """Each weighted operator of the file, in graph order (see the module docstring)."""
    proto = _load(onnx_file)
    graph = proto.graph
    stored: dict[str, int] = {i.name: _tensor_bytes(i) for i in graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {i.name: tuple(i.dims) for i in graph.initializer}
    producer: dict[str, onnx.NodeProto] = {}
    constant = set(stored)
    for node in graph.node:  # graph order is topological
        for out in node.output:
            producer[out] = node
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    stored[node.output[0]] = _tensor_bytes(attr.t)
                    shapes[node.output[0]] = tuple(attr.t.dims)
                    constant.add(node.output[0])
        elif node.input and all(i in constant for i in node.input if i):
            constant.update(node.output)
    counted: set[str] = set()
    inferred: dict[str, tuple[int, ...]] | None = None

    def sources(name: str, seen: set[str]) -> None:
        """The stored tensors ``name`` is computed from, into ``seen``."""
        if name in seen or not name:
            return
        seen.add(name)
        node = producer.get(name)
        if node is not None and node.op_type != "Constant":
            for i in node.input:
                sources(i, seen)

    def elements(name: str) -> int | None:
        nonlocal inferred
        if name not in shapes:
            if inferred is None:
                try:
                    done = onnx.shape_inference.infer_shapes(proto)
                except Exception:  # noqa: BLE001 - a graph ONNX cannot infer: its layers go uncounted
                    done = onnx.ModelProto()
                inferred = {v.name: tuple(d.dim_value if d.HasField("dim_value") else -1
                                          for d in v.type.tensor_type.shape.dim)
                            for v in done.graph.value_info if v.type.tensor_type.HasField("shape")}
            shape = inferred.get(name)
            if shape is None or any(d < 0 for d in shape):
                return None
            return int(np.prod(shape, dtype=np.int64))
        return int(np.prod(shapes[name], dtype=np.int64))

    out = []
    for node in graph.node:
        spec = WEIGHTED_OPS.get(node.op_type)
        if spec is None:
            continue
        values, extras = spec
        inputs = list(node.input)
        if not any(i and i not in constant for i in inputs):
            continue  # a constant computation (part of unpacking a weight), not a layer
        if node.op_type == "MatMul" and inputs[1] not in constant and inputs[0] in constant:
            values = (0,)
        weight_inputs = [inputs[i] for i in values if i < len(inputs) and inputs[i] in constant]
        if not weight_inputs:
            continue  # multiplies two activations (attention scores)
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            n = int(attrs["N"]) * int(attrs["K"])
        else:
            counts = [elements(i) for i in weight_inputs]
            if any(c is None for c in counts):
                continue
            n = sum(counts)
        seen: set[str] = set()
        for i in weight_inputs + [inputs[i] for i in extras if i < len(inputs) and inputs[i] in constant]:
            sources(i, seen)
        mine = {s for s in seen if s in stored and s not in counted}
        counted |= mine
        out.append(LayerBits(node.op_type, n, int(sum(stored[s] for s in mine))))
    return out


def effective_bits(onnx_file: bytes | str | Path) -> float:
    """Bits per weight of the file: its layers' weight bytes x 8 over their weights (0 without any)."""
    layers = layer_bits(onnx_file)
    n = sum(lay.weights for lay in layers)
    return 8.0 * sum(lay.weight_bytes for lay in layers) / n if n else 0.0


@register_metric("bits")
class EffectiveBits(BaseMetric):
    """Bits per weight of the exported file (module docstring): ``bits<=4.5`` in a budget."""

    unit, units = "bits", PLAIN_UNITS
    label = "bits/weight"
    description = "bits per weight of the exported file (weighted mean over the layers' weights; scales and lookup tables amortised over the weights they serve)"

    def measure(self, ctx):
        if ctx.onnx is None:
            raise ConfigError("metric.bits", "a candidate with its exported file to read")
        return effective_bits(ctx.onnx)

    def format(self, value: float) -> str:
        return f"{value:.2f}"
