"""ONNX graph rewrites for deployable files: lean files, payload accounting, fp16 weights.

For models of a few kilobytes the ONNX format's fixed overhead (node and tensor names, doc
strings, shape annotations) is a sizeable share of the file, so artifacts are written lean:
no doc strings, no node names, short tensor names. Every file is reported as its weight payload
(initializer bytes) plus that overhead.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_NAMES = ("input", "logits")


def layer_nodes(proto: onnx.ModelProto, *, embeddings: bool = False) -> dict[str, str]:
    """Module name -> name of its Conv/Gemm/MatMul node, from the exporter's scope names (with
    ``embeddings``, also an ``nn.Embedding``'s ``Gather`` of its stored table).

    The TorchScript exporter names nodes by module scope, ``/features/features.0/conv/Conv``
    for ``features.0.conv``: children of containers repeat their parent's name as a prefix.
    """
    out: dict[str, str] = {}
    stored = {i.name for i in proto.graph.initializer} if embeddings else set()
    for node in proto.graph.node:
        table = node.op_type == "Gather" and bool(node.input) and node.input[0] in stored
        if (node.op_type not in ("Conv", "Gemm", "MatMul") and not table) or "/" not in node.name:
            continue
        parts, names, prev = node.name.strip("/").split("/")[:-1], [], None
        for part in parts:
            names.append(part[len(prev) + 1 :] if prev and part.startswith(prev + ".") else part)
            prev = part
        out.setdefault(".".join(names), node.name)
    return out


def lean(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Strip what the runtime does not need: doc strings, node names, long tensor names (not the
    graph's input and output names), value info."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    proto.doc_string = proto.producer_name = proto.producer_version = proto.domain = ""
    del proto.metadata_props[:]
    g.doc_string = ""
    del g.value_info[:]
    names: dict[str, str] = {}
    inits = {i.name for i in g.initializer}
    # the file's interface keeps its names: a model's several inputs and outputs are fed and read by them
    keep = {*KEEP_NAMES, *(v.name for v in g.input if v.name not in inits), *(v.name for v in g.output)}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in names:
            names[name] = _base36(len(names))
        return names[name]

    for init in g.initializer:
        init.name = short(init.name)
        init.doc_string = ""
    for node in g.node:
        node.name = ""
        node.doc_string = ""
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for v in list(g.input) + list(g.output):
        v.name = short(v.name)
        v.doc_string = ""
    return proto


def _base36(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = digits[i % 36] + s
        i //= 36
        if i == 0:
            return "w" + s


#: ONNX's sub-byte tensor types -> bits per element (stored packed: two 4-bit values per byte)
PACKED_BITS = {TensorProto.UINT4: 4, TensorProto.INT4: 4, TensorProto.FLOAT4E2M1: 4}


def tensor_nbytes(t: onnx.TensorProto) -> int:
    """Bytes of a stored tensor's values: a sub-byte type's packed bytes (numpy reads one byte per
    4-bit element), any other type's array bytes."""
    bits = PACKED_BITS.get(t.data_type)
    if bits is not None:
        return -(-int(np.prod(t.dims, dtype=np.int64)) * bits // 8)
    return int(numpy_helper.to_array(t).nbytes)


def payload_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of the tensors stored in the file (initializers and constants): the weight payload."""
    total = sum(tensor_nbytes(t) for t in proto.graph.initializer)
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    total += tensor_nbytes(attr.t)
    return int(total)


def size_report(data: bytes) -> dict[str, int]:
    """``bytes`` (whole file), ``weight_bytes`` (payload) and ``overhead_bytes`` (the rest)."""
    proto = onnx.ModelProto.FromString(data)
    weights = payload_bytes(proto)
    return {"bytes": len(data), "weight_bytes": weights, "overhead_bytes": len(data) - weights}


def fp16_weights(proto: onnx.ModelProto, names: set[str] | None = None) -> onnx.ModelProto:
    """Store float initializers (all, or those in ``names``) as fp16, each followed by a Cast
    back to fp32: the file halves, the arithmetic stays fp32 (ONNX Runtime folds the casts
    when it loads the file, and has few fp16 kernels on CPUs)."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    casts, keep = [], []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT or (names is not None and init.name not in names):
            keep.append(init)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_h")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return proto


def gemm_to_matmul(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite ``Gemm`` with a constant weight as ``MatMul`` (+ ``Add``), which ONNX Runtime's
    dynamic quantization handles (it has no integer Gemm). The MatMul keeps the Gemm's name."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    nodes = []
    for node in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w.T), node.input[1]))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "_mm" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], node.input[1]], [mm_out], name=node.name))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "_bias"))
    del g.node[:]
    g.node.extend(nodes)
    return proto
