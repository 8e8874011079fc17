"""A runtime-friendly layout for 1-D convolutional networks: the batch as the rows of one image.

ONNX Runtime's CPU convolution runs an im2col and a GEMM per image of the batch. For the small
1-D CNNs slimnas finds (a few channels, tens of positions) those GEMMs are tiny and the per-image
work dominates: at batch 64 it is about a quarter of the MNIST-1D paper CNN's latency, and it
does not shrink when channels are pruned (``benchmarks/conv_overhead.py``). Laid out as
``(1, C, N, L)``, every 1-D convolution is a 2-D one with a ``1 x k`` kernel: the same arithmetic,
one im2col and one GEMM for the whole batch.

:func:`batch_as_rows` rewrites an exported graph that way: a transpose at the input; each 1-D
Conv, MaxPool and AveragePool turned 2-D; element-wise operators (activations, the residual
additions, scalar constants) kept as they are; and the tensor transposed back before the first
operator that reads its layout (a flatten, a global pooling, a reshape, a Gemm). The file's input
and outputs are unchanged: ``(N, C, L)`` in, the same logits out.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: operators of one input that compute element by element (the layout does not matter to them)
UNARY = frozenset({"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "Elu", "Selu",
                   "Celu", "Gelu", "Erf", "Softplus", "Softsign", "Mish", "Clip", "Identity", "Dropout", "Abs",
                   "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Cast"})
#: element-wise operators of two inputs: both in the rows layout, or one a scalar
BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"})
#: sliding-window operators whose 1-D form becomes a 2-D one with a window of height 1
WINDOWED = frozenset({"Conv", "MaxPool", "AveragePool"})


def has_1d_convolutions(proto: onnx.ModelProto) -> bool:
    """Whether the graph holds a Conv whose weight is a rank-3 initializer (a 1-D convolution)."""
    ranks = {t.name: len(t.dims) for t in proto.graph.initializer}
    return any(n.op_type == "Conv" and ranks.get(n.input[1]) == 3 for n in proto.graph.node)


def rows_where_possible(proto: onnx.ModelProto) -> onnx.ModelProto:
    """:func:`batch_as_rows` of ``proto`` where it has 1-D convolutions; ``proto`` itself otherwise."""
    return batch_as_rows(proto) if has_1d_convolutions(proto) else proto


def batch_as_rows(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` (one rank-3 input ``(N, C, L)``) with its 1-D convolutions run on the batch laid
    out as the rows of one image; the outputs are the same. Raises ``ValueError`` when the graph
    has no 1-D convolution."""
    if not has_1d_convolutions(proto):
        raise ValueError("the model has no 1-D convolution (a Conv over (N, C, L) inputs)")
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 3:
        raise ValueError("the model does not take one (N, C, L) input")
    scalars = {t.name for t in g.initializer if math.prod(t.dims) == 1}
    scalars |= {n.output[0] for n in g.node if n.op_type == "Constant" and n.attribute
                and n.attribute[0].name == "value" and math.prod(n.attribute[0].t.dims) == 1}
    unsq, perm = "rows_axis0", [1, 0, 2]
    new_inits = [numpy_helper.from_array(np.array([0], dtype=np.int64), unsq)]
    rows: dict[str, str] = {}  # tensor of the original graph -> its name in the rows layout
    nodes: list[onnx.NodeProto] = []
    x = inputs[0].name
    nodes += [helper.make_node("Transpose", [x], [x + "_cnl"], perm=perm),
              helper.make_node("Unsqueeze", [x + "_cnl", unsq], [x + "_rows"])]
    rows[x] = x + "_rows"
    back: set[str] = set()

    def restore(name: str) -> None:  # the original tensor, from its rows form, once
        if name in rows and name not in back:
            nodes.append(helper.make_node("Squeeze", [rows[name], unsq], [name + "_cnl"]))
            nodes.append(helper.make_node("Transpose", [name + "_cnl"], [name], perm=perm))
            back.add(name)

    for node in g.node:
        ins = list(node.input)
        in_rows = [n in rows for n in ins]
        one_out = len(node.output) == 1  # (a MaxPool that also returns indices keeps the plain layout)
        if node.op_type in WINDOWED and in_rows[0] and one_out and _window_1d(node, inits):
            out = helper.make_node(node.op_type, [rows[ins[0]], *ins[1:]], [node.output[0] + "_rows"])
            out.attribute.extend(_attributes_2d(node))
            if node.op_type == "Conv":
                w = numpy_helper.to_array(inits[ins[1]])
                new_inits.append(numpy_helper.from_array(w[:, :, None, :], ins[1] + "_rows"))
                out.input[1] = ins[1] + "_rows"
            nodes.append(out)
            rows[node.output[0]] = out.output[0]
            continue
        elementwise = (node.op_type in UNARY and in_rows[:1] == [True] and not any(in_rows[1:])) or (
            node.op_type in BINARY and any(in_rows) and all(r or n in scalars for n, r in zip(ins, in_rows, strict=True)))
        if elementwise and one_out:
            out = onnx.NodeProto()
            out.CopyFrom(node)
            out.input[:] = [rows.get(n, n) for n in ins]
            out.output[:] = [node.output[0] + "_rows"]
            nodes.append(out)
            rows[node.output[0]] = node.output[0] + "_rows"
            continue
        for n, r in zip(ins, in_rows, strict=True):
            if r:
                restore(n)
        nodes.append(node)
    for o in g.output:
        restore(o.name)
    used = {n for node in nodes for n in node.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.node[:], g.initializer[:], g.value_info[:]
    g.node.extend(nodes)
    g.initializer.extend([*kept, *(t for t in new_inits if t.name in used)])
    onnx.checker.check_model(proto)
    return proto


def _window_1d(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    if node.op_type == "Conv":
        return node.input[1] in inits and len(inits[node.input[1]].dims) == 3
    shape = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), [])
    return len(shape) == 1


def _attributes_2d(node: onnx.NodeProto) -> list[onnx.AttributeProto]:
    """The node's attributes for a window of height 1: a leading 1 on kernel, stride and
    dilation, no padding on the rows."""
    out = []
    for a in node.attribute:
        if a.name in ("kernel_shape", "strides", "dilations"):
            out.append(helper.make_attribute(a.name, [1, *a.ints]))
        elif a.name == "pads":
            begin, end = a.ints
            out.append(helper.make_attribute("pads", [0, begin, 0, end]))
        else:
            a2 = onnx.AttributeProto()
            a2.CopyFrom(a)
            out.append(a2)
    return out
