"""Weights below 8 bits, written into the ONNX file as they are stored: b-bit codes, bit-packed,
plus a lookup table and optional per-block scales (the shared encoding of ``int4`` and
``palette``).

A layer's weight, as a ``(C, L)`` matrix (one row per output channel), is
``value = table[t(c), code] * scale[c, j // block]``: uniform integers have one table of levels
(``-2^(b-1) .. 2^(b-1)-1``) and a scale per block of ``block`` weights of a row; palettized
weights have a k-means table per tensor, per group of ``group`` output channels (``t(c) = c //
group``; 1: per channel) and no scales, the table in fp32 or fp16 (Core ML's lookup tables are
fp16: the file gathers fp16 values and casts them to fp32).

In the file, each weight is one of:

- ``MatMulNBits`` (ONNX Runtime's ``com.microsoft`` operator for 2/4/8-bit block-quantized
  weights of a matrix multiplication): a Linear layer of a uniform encoding *runs* at b bits;
- packed codes plus table (and scales), unpacked in the graph into the fp32 tensor the layer
  reads. ONNX Runtime folds that subgraph when it loads the file, so the layer is *stored* at b
  bits and *runs* at fp32 (a convolution, which has no low-bit kernel in ONNX Runtime; every
  palettized layer). 4-bit codes with at most one factor per output channel are ONNX's ``UINT4``
  tensor type, cast to indices and looked up in two to six nodes (the file is then opset 21,
  converted by ONNX's version converter, where the installed ONNX Runtime runs it); other codes
  are a byte stream unpacked with ``Range``/``Gather``/``BitShift``/``Mod`` (opset 13 operators,
  some 8 to 16 nodes a layer). Each node costs the file 20-30 bytes: on a 5,000-weight model the
  ``UINT4`` unpacking is 0.8 kB smaller.

The ONNX exporter folds a batch norm that follows a convolution into the convolution's weight
(a per-channel factor): such a factor goes into the scales (or the tables), so the file holds
exactly the b-bit values the eager model computes with.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
from onnx import TensorProto, helper, numpy_helper, version_converter
from torch import nn

from slimnas.export._onnx import export_proto
from slimnas.export._proto import layer_nodes, lean
from slimnas.export._session import ort_session

#: how a layer is held in the file (the report's words)
RUNS_LOW_BIT = "MatMulNBits: stored and run at {bits} bits"
STORED_LOW_BIT = "stored at {bits} bits, unpacked to fp32 when the file loads: runs at fp32"
NO_KERNEL = " (ONNX Runtime has no low-bit convolution)"


@dataclass(frozen=True)
class LowBitWeight:
    """One layer's weight as b-bit codes.

    Attributes:
        codes: ``(C, L)`` integers in ``[0, 2**bits)``.
        table: ``(n_tables, k)`` values (fp32 or fp16) the codes index; ``n_tables`` is 1 or
            ``ceil(C / group)``.
        scales: ``(C, ceil(L / block))`` factors per block of a row, or ``None``.
        block: weights of a row per scale.
        shape: the layer's weight shape (``C`` is its first axis).
        uniform: the table is the integer levels (``MatMulNBits`` can run it).
        group: output channels per table row when there is more than one (1: per channel).
    """

    codes: np.ndarray
    bits: int
    table: np.ndarray
    scales: np.ndarray | None
    block: int
    shape: tuple[int, ...]
    uniform: bool = False
    group: int = 1

    def table_rows(self) -> np.ndarray | int:
        """Each output channel's table row (``0`` for one table)."""
        return np.arange(self.codes.shape[0])[:, None] // self.group if len(self.table) > 1 else 0

    def dequantize(self) -> np.ndarray:
        """The fp32 weight (in ``shape``) the codes stand for."""
        values = self.table[self.table_rows(), self.codes].astype(np.float32)
        if self.scales is not None:
            values = values * np.repeat(self.scales, self.block, axis=1)[:, : self.codes.shape[1]]
        return values.astype(np.float32).reshape(self.shape)

    def times(self, factor: np.ndarray) -> LowBitWeight:
        """This weight with row ``c`` multiplied by ``factor[c]`` (a folded batch norm): into the
        scales, an fp32 per-channel table, or one factor per channel, kept at fp16 beside fp16
        tables (half the bytes; the palettizer rounds the batch norms' factors to fp16 first, so
        the file still computes what the model does)."""
        factor = factor.astype(np.float32)
        if self.scales is not None:
            return replace(self, scales=(self.scales * factor[:, None]).astype(self.scales.dtype))
        if len(self.table) > 1 and self.group == 1 and self.table.dtype == np.float32:
            return replace(self, table=(self.table * factor[:, None]).astype(np.float32))
        # fp16 where the factors are fp16 values up to the exporter's fp32 rounding (the palettizer rounded them)
        half = self.table.dtype == np.float16 and np.allclose(factor.astype(np.float16), factor, rtol=1e-6, atol=0)
        return replace(self, scales=factor[:, None].astype(np.float16 if half else np.float32), block=self.codes.shape[1])

    @property
    def n_bytes(self) -> int:
        """Bytes of the encoding: packed codes, table, scales."""
        scales = 0 if self.scales is None else self.scales.nbytes
        return math.ceil(self.codes.size * self.bits / 8) + self.table.nbytes + scales


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes at ``bits`` bits each, least significant bit first, as one bit stream (uint8)."""
    flat = codes.reshape(-1).astype(np.uint32)
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    planes = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: n * bits].reshape(n, bits)
    return (planes.astype(np.int64) << np.arange(bits)).sum(1)


def uniform_codes(w: np.ndarray, bits: int, block: int) -> LowBitWeight:
    """Round-to-nearest, symmetric, one scale per block of ``block`` weights of each output
    channel (``block`` >= the row length: per channel). The scale maps each block's
    largest-magnitude weight onto the level ``-2^(b-1)`` exactly (as ONNX Runtime's own weight
    quantizer does), so all ``2^b`` levels are used."""
    rows = w.reshape(w.shape[0], -1).astype(np.float32)
    c, n = rows.shape
    block = min(block, n) if block > 0 else n
    scales = block_scales(rows, bits, block)
    q = np.clip(np.round(rows / np.repeat(scales, block, axis=1)[:, :n]), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return uniform_weight(q, scales, bits, block, w.shape)


def block_scales(rows: np.ndarray, bits: int, block: int) -> np.ndarray:
    c, n = rows.shape
    nb = -(-n // block)
    padded = np.zeros((c, nb * block), np.float32)
    padded[:, :n] = rows
    blocks = padded.reshape(c, nb, block)
    top = np.take_along_axis(blocks, np.abs(blocks).argmax(2)[..., None], 2)[..., 0]
    scales = top / -(2 ** (bits - 1))
    scales[scales == 0] = 1.0
    return scales.astype(np.float32)


def uniform_weight(q: np.ndarray, scales: np.ndarray, bits: int, block: int, shape) -> LowBitWeight:
    """Signed integer levels ``q`` (``(C, L)``) with their scales, as a :class:`LowBitWeight`."""
    half = 2 ** (bits - 1)
    levels = (np.arange(2**bits) - half).astype(np.float32)[None, :]
    return LowBitWeight((q + half).astype(np.int64), bits, levels, scales.astype(np.float32), block, tuple(shape),
                        uniform=True)


# --- the ONNX file --------------------------------------------------------------------------

class _Graph:
    """New initializers and nodes, with unique names."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.n, self.inits, self.nodes = prefix, 0, [], []
        self.scalars: dict[tuple, str] = {}

    def name(self) -> str:
        self.n += 1
        return f"{self.prefix}_{self.n}"

    def const(self, value, dtype=None) -> str:
        value = np.asarray(value, dtype=dtype)
        key = (value.dtype.str, value.shape, value.tobytes()) if value.size <= 4 else None
        if key in self.scalars:  # one initializer per small constant, shared by every layer's unpacking
            return self.scalars[key]
        name = self.name()
        self.inits.append(numpy_helper.from_array(value, name))
        if key is not None:
            self.scalars[key] = name
        return name

    def nibbles(self, codes: np.ndarray) -> str:
        """``codes`` (integers in ``[0, 16)``) as one ``UINT4`` initializer of their shape: two
        per byte, first in the low half (ONNX's packing, as :func:`pack_codes` packs 4 bits)."""
        name = self.name()
        self.inits.append(helper.make_tensor(name, TensorProto.UINT4, codes.shape, pack_codes(codes, 4).tobytes(),
                                             raw=True))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self.name()
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _finish(g: _Graph, value: str, output: str, transpose: bool) -> None:
    if transpose:  # a MatMul's weight is (in, out): the layer's (out, in) transposed
        g.op("Transpose", [value], output, perm=[1, 0])
    else:  # the last node computes the weight: it takes the weight's name
        assert g.nodes[-1].output[0] == value
        g.nodes[-1].output[0] = output


def nibble_layout(lw: LowBitWeight) -> bool:
    """Whether :func:`_unpack_nibbles` holds this weight: 4-bit codes with one factor per row at
    most (per-block scales take the general unpacking)."""
    return lw.bits == 4 and (lw.scales is None or lw.scales.shape[1] == 1)


def _unpack_nibbles(g: _Graph, lw: LowBitWeight, output: str, transpose: bool) -> None:
    """The fp32 weight ``output`` from 4-bit codes held as ONNX's ``UINT4`` type (opset 21), in
    two to six nodes: ``Cast`` to int64, a ``Gather`` from the one table (the codes in the
    weight's shape) or a ``GatherElements`` from each row's table (the codes as one row per
    table: ``group`` output channels each), ``Reshape``, ``Cast`` of an fp16 table, ``Mul`` by a
    factor per output channel. The same values as :func:`_unpack_nodes` computes."""
    c, n_row = lw.codes.shape
    n_tables, k = lw.table.shape
    shape = lw.shape
    table = lw.table if lw.table.dtype == np.float16 else lw.table.astype(np.float32)
    if n_tables == 1:
        value = g.op("Gather", [g.const(table.reshape(-1)), g.op("Cast", [g.nibbles(lw.codes.reshape(shape))],
                                                                  to=TensorProto.INT64)])
        out_shape = shape
    else:
        if c % lw.group == 0:  # the codes of a table's channels as one row
            codes, tables = lw.codes.reshape(n_tables, lw.group * n_row), g.const(table)
        else:  # a last, smaller group: each channel's table row, gathered
            codes = lw.codes
            tables = g.op("Gather", [g.const(table), g.op("Div", [g.op("Range", [g.const(np.int64(0)), g.const(np.int64(c)),
                                                                                 g.const(np.int64(1))]),
                                                                  g.const(np.int64(lw.group))])])
        index = g.op("Cast", [g.nibbles(codes)], to=TensorProto.INT64)
        value = g.op("GatherElements", [tables, index], axis=1)
        out_shape = codes.shape
    if table.dtype == np.float16:
        value = g.op("Cast", [value], to=TensorProto.FLOAT)
    if tuple(out_shape) != tuple(shape):
        value = g.op("Reshape", [value, g.const(np.array(shape, np.int64))])
    if lw.scales is not None:  # one factor per output channel, broadcast over the weight's other axes
        factor = g.const(lw.scales.reshape((c,) + (1,) * (len(shape) - 1)))
        if lw.scales.dtype != np.float32:
            factor = g.op("Cast", [factor], to=TensorProto.FLOAT)
        value = g.op("Mul", [value, factor])
    _finish(g, value, output, transpose)


def _unpack_nodes(g: _Graph, lw: LowBitWeight, output: str, transpose: bool) -> None:
    """Nodes that compute the fp32 weight ``output`` from the packed codes, table and scales
    (few nodes: each costs the file some 20-30 bytes, a small layer's codes not many more),
    with opset 13 operators."""
    c, n_row = lw.codes.shape
    n, b = lw.codes.size, lw.bits
    i64 = lambda v: g.const(np.int64(v))  # noqa: E731 - scalar constants
    need_pos = len(lw.table) > 1 or (lw.scales is not None and lw.scales.shape[1] > 1)
    # the codes in the weight's shape where no position is computed (a factor per row broadcasts over it)
    rows_shape = lambda: g.const(np.array(lw.shape, np.int64))  # noqa: E731
    if 8 % b == 0:  # whole codes per byte: shift each byte by every code's offset at once
        per = 8 // b
        packed = pack_codes(lw.codes, b)
        if per > 1:  # stored as a column: the shifts broadcast across it, no Unsqueeze
            column = g.const(packed.reshape(-1, 1))
            shifted = g.op("BitShift", [column, g.const((np.arange(per) * b).astype(np.uint8))], direction="RIGHT")
            code = g.op("Mod", [shifted, g.const(np.uint8(2**b))])
            if n % per or need_pos:
                code = g.op("Reshape", [code, g.const(np.array([-1], np.int64))])
                if n % per:
                    code = g.op("Slice", [code, g.const(np.array([0], np.int64)), g.const(np.array([n], np.int64))])
            if not need_pos:
                code = g.op("Reshape", [code, rows_shape()])
        else:
            code = g.const(packed if need_pos else packed.reshape(lw.shape))
        code = g.op("Cast", [code], to=TensorProto.INT64)
    else:  # codes across byte boundaries: two bytes per code
        packed = g.const(np.concatenate([pack_codes(lw.codes, b), np.zeros(1, np.uint8)]))
        pos = g.op("Range", [i64(0), i64(n * b), i64(b)])
        byte = g.op("Div", [pos, i64(8)])
        shift = g.op("Cast", [g.op("Mod", [pos, i64(8)])], to=TensorProto.UINT32)
        lo = g.op("Cast", [g.op("Gather", [packed, byte])], to=TensorProto.UINT32)
        hi = g.op("Cast", [g.op("Gather", [packed, g.op("Add", [byte, i64(1)])])], to=TensorProto.UINT32)
        word = g.op("Add", [lo, g.op("Mul", [hi, g.const(np.uint32(256))])])
        code = g.op("Mod", [g.op("BitShift", [word, shift], direction="RIGHT"), g.const(np.uint32(2**b))])
        code = g.op("Cast", [code], to=TensorProto.INT64)
        if not need_pos:
            code = g.op("Reshape", [code, rows_shape()])
    index = g.op("Range", [i64(0), i64(n), i64(1)]) if need_pos else None
    blocks = lw.scales is not None and lw.scales.shape[1] > 1
    row = g.op("Div", [index, i64(n_row)]) if (len(lw.table) > 1 and lw.group == 1) or blocks else None
    k = lw.table.shape[1]
    if len(lw.table) > 1:
        table_row = row if lw.group == 1 else g.op("Div", [index, i64(n_row * lw.group)])
        code = g.op("Add", [code, g.op("Mul", [table_row, i64(k)])])
    table = lw.table.reshape(-1)
    value = g.op("Gather", [g.const(table if table.dtype == np.float16 else table.astype(np.float32)), code])
    if table.dtype == np.float16:
        value = g.op("Cast", [value], to=TensorProto.FLOAT)
    final = need_pos  # flat values: the weight's shape still to give
    if lw.scales is not None:
        if blocks:  # one factor per block of a row: gathered per weight
            nb = lw.scales.shape[1]
            col = g.op("Mod", [index, i64(n_row)])
            which = g.op("Add", [g.op("Mul", [row, i64(nb)]), g.op("Div", [col, i64(lw.block)])])
            factor = g.op("Gather", [g.const(lw.scales.reshape(-1)), which])
        else:  # one per row: broadcast over the weight's other axes
            if need_pos:
                value = g.op("Reshape", [value, rows_shape()])
            final = False
            factor = g.const(lw.scales.reshape((c,) + (1,) * (len(lw.shape) - 1)))
        if lw.scales.dtype != np.float32:
            factor = g.op("Cast", [factor], to=TensorProto.FLOAT)
        value = g.op("Mul", [value, factor])
    if final:
        value = g.op("Reshape", [value, g.const(np.array(lw.shape, dtype=np.int64))])
    _finish(g, value, output, transpose)


def _matmul_nbits(g: _Graph, lw: LowBitWeight, a: str, output: str, accuracy_level: int = 0) -> None:
    """``output = a @ W.T`` for a uniform encoding, as ``MatMulNBits`` (block size a power of two >= 16)."""
    c, k = lw.codes.shape
    block = max(16, 1 << (lw.block - 1).bit_length())
    nb = -(-k // block)
    codes = np.full((c, nb * block), 2 ** (lw.bits - 1), np.int64)  # the level 0 as padding
    codes[:, :k] = lw.codes
    scales = lw.scales  # per block (runs_in_matmul_nbits: blocks coincide, or one per channel)
    assert scales.shape[1] == nb, (scales.shape, nb)
    per = 8 // lw.bits
    u = codes.reshape(c, nb, block).astype(np.uint8)
    packed = np.zeros((c, nb, block * lw.bits // 8), np.uint8)
    for j in range(per):
        packed |= (u[:, :, j::per] << (j * lw.bits)).astype(np.uint8)
    g.nodes.append(helper.make_node("MatMulNBits", [a, g.const(packed), g.const(scales.reshape(-1).astype(np.float32))],
                                    [output], domain="com.microsoft", K=k, N=c, bits=lw.bits, block_size=block,
                                    **({"accuracy_level": accuracy_level} if accuracy_level else {})))


def runs_in_matmul_nbits(lw: LowBitWeight) -> bool:
    """Whether ``MatMulNBits`` can hold this encoding exactly: uniform, 2/4/8 bits, and one scale
    per power-of-two block (or per channel)."""
    if not lw.uniform or lw.bits not in (2, 4, 8) or lw.scales is None:
        return False
    per_channel = lw.scales.shape[1] == 1
    return per_channel or (lw.block >= 16 and lw.block & (lw.block - 1) == 0)


def _row_factor(onnx_w: np.ndarray, ours: np.ndarray) -> np.ndarray | None:
    """``a`` with ``onnx_w[c] == a[c] * ours[c]`` for every row (a batch norm the exporter folded),
    or ``None`` when the file's weight is not ours up to such a factor."""
    num = (onnx_w * ours).sum(1, dtype=np.float64)
    den = (ours * ours).sum(1, dtype=np.float64)
    a = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    scale = max(float(np.abs(onnx_w).max()), 1e-12)
    if not np.allclose(ours * a[:, None], onnx_w, rtol=1e-4, atol=1e-6 * scale):
        return None
    return a


def lowbit_onnx(model: nn.Module, input_shape: tuple[int, ...], weights: dict[str, LowBitWeight], *,
                matmul_nbits: bool = True, accuracy_level: int = 0) -> tuple[bytes, dict[str, str]]:
    """``model`` (whose layers in ``weights`` already compute with the dequantized values) as a
    lean ONNX file holding those layers at their bits.

    Args:
        accuracy_level: ``MatMulNBits``'s: 0 computes in fp32 with the dequantized weights, 4
            quantizes the activations to int8 per block inside the kernel (faster, not exact).

    Returns:
        ``(file bytes, {layer: how it is held})``: ``MatMulNBits`` (runs at b bits), packed and
        unpacked at load (stored at b bits, runs at fp32), or left at fp32 and why.
    """
    proto = export_proto(model, input_shape, verify=False)
    how = rewrite_lowbit(proto, weights, matmul_nbits=matmul_nbits, accuracy_level=accuracy_level)
    data = lean(proto).SerializeToString()
    ort_session(data)  # raises if ONNX Runtime cannot load it
    return data, how


NIBBLE_OPSET = 21  # ONNX's 4-bit tensor types, and Cast from them, are opset 21's


@functools.cache
def runtime_takes_uint4() -> bool:
    """Whether the installed ONNX Runtime runs opset 21's ``Cast`` from ``UINT4`` (1.20 and later;
    slimnas allows 1.18), checked once with a real session on a two-node file."""
    codes = np.array([[3, 15, 0]], np.int64)
    table = np.arange(16, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["c"], ["i"], to=TensorProto.INT64), helper.make_node("Gather", ["t", "i"], ["y"])],
        "probe", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("c", TensorProto.UINT4, codes.shape, pack_codes(codes, 4).tobytes(), raw=True),
         numpy_helper.from_array(table, "t")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", NIBBLE_OPSET)], ir_version=10)
    try:
        return bool(np.array_equal(ort_session(model.SerializeToString()).run(None, {})[0], table[codes]))
    except Exception:  # noqa: BLE001 - an older runtime: no kernel, or no UINT4
        return False


def _nibbles_opset(proto, weights: dict[str, LowBitWeight], matmul_nbits: bool) -> bool:
    """Whether the 4-bit weights of ``weights`` that the file unpacks can be held as ``UINT4``:
    ``proto`` is (made, by ONNX's version converter, in place) opset 21 or later. ``False``, with
    ``proto`` unchanged, where no such weight is unpacked, the installed ONNX Runtime cannot run
    it or the converter cannot convert the graph (the opset 13 unpacking then)."""
    ops = {n.name: n.op_type for n in proto.graph.node}
    by_layer = layer_nodes(proto, embeddings=True)
    if not any(nibble_layout(lw) and not (matmul_nbits and runs_in_matmul_nbits(lw)
                                          and ops.get(by_layer.get(layer, "")) in ("Gemm", "MatMul"))
               for layer, lw in weights.items()) or not runtime_takes_uint4():
        return False
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version < NIBBLE_OPSET:
        try:
            converted = version_converter.convert_version(proto, NIBBLE_OPSET)
        except Exception:  # noqa: BLE001 - an operator the converter has no adapter for: the opset 13 unpacking
            return False
        if [n.name for n in converted.graph.node if n.name] != [n.name for n in proto.graph.node if n.name]:
            return False  # (the layers are found by the exporter's node names)
        proto.CopyFrom(converted)
    proto.ir_version = max(proto.ir_version, 10)  # (opset 21's IR)
    return True


def rewrite_lowbit(proto, weights: dict[str, LowBitWeight], *, matmul_nbits: bool = True,
                   accuracy_level: int = 0) -> dict[str, str]:
    """Hold the layers of ``weights`` at their bits in ``proto`` (an exported graph whose node
    names are the exporter's, changed in place: other layers may already be int8 or fp16);
    returns ``{layer: how it is held}`` as :func:`lowbit_onnx` does."""
    nibbles = _nibbles_opset(proto, weights, matmul_nbits)
    graph = proto.graph
    nodes = {n.name: n for n in graph.node}
    by_layer = layer_nodes(proto, embeddings=True)
    inits = {i.name: i for i in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for i in node.input:
            users[i] = users.get(i, 0) + 1
    g = _Graph("lowbit")
    how: dict[str, str] = {}
    drop: set[str] = set()
    replaced: dict[int, list] = {}
    for layer, lw in weights.items():
        node = nodes.get(by_layer.get(layer, ""))
        at = 0 if node is not None and node.op_type == "Gather" else 1  # an embedding's Gather reads its table first
        if node is None or len(node.input) < 2 or node.input[at] not in inits:
            how[layer] = "fp32: not found as a weighted operator of the ONNX graph"
            continue
        w = numpy_helper.to_array(inits[node.input[at]])
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b)
        rows = (w.T if transposed else w).reshape(lw.shape[0], -1)
        factor = _row_factor(rows, lw.dequantize().reshape(lw.shape[0], -1)) if w.ndim >= 2 and w.size == lw.codes.size else None
        if factor is None:
            how[layer] = "fp32: the exported weight is not the quantized one (an operator changed it)"
            continue
        if not np.allclose(factor, 1.0, rtol=1e-6, atol=0):
            lw = lw.times(factor)
        gemm_plain = node.op_type == "MatMul" or (
            node.op_type == "Gemm" and trans_b and all(a.name == "transB" or (a.name in ("alpha", "beta") and a.f == 1.0)
                                                       for a in node.attribute))
        if matmul_nbits and gemm_plain and users[node.input[1]] == 1 and runs_in_matmul_nbits(lw):
            out = node.output[0]
            bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else None
            product = g.name() if bias else out
            _matmul_nbits(g, lw, node.input[0], product, accuracy_level)
            new = [g.nodes.pop()]  # in the node's place: its input is computed upstream
            if bias:
                new.append(helper.make_node("Add", [product, bias], [out]))
            replaced[id(node)] = new
            drop.add(node.input[1])
            how[layer] = RUNS_LOW_BIT.format(bits=lw.bits)
            continue
        name = node.input[at]
        if users[name] > 1:  # a table another operator reads too (tied weights): unpacked once, for all
            if name in drop:
                how[layer] = STORED_LOW_BIT.format(bits=lw.bits)
                continue
        (_unpack_nibbles if nibbles and nibble_layout(lw) else _unpack_nodes)(g, lw, name, transposed)
        drop.add(name)
        no_kernel = node.op_type == "Conv" and lw.uniform
        how[layer] = STORED_LOW_BIT.format(bits=lw.bits) + (NO_KERNEL if no_kernel else "")
    new_nodes = list(g.nodes)
    for node in graph.node:
        new_nodes.extend(replaced.get(id(node), [node]))
    keep = [i for i in graph.initializer if i.name not in drop]
    del graph.initializer[:]
    graph.initializer.extend(keep + g.inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if any(n.domain == "com.microsoft" for n in graph.node) and not any(
            o.domain == "com.microsoft" for o in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return how



def encode_lowbit(model: nn.Module, layer_precision: dict[str, str], data=None) -> dict[str, LowBitWeight]:
    """The layers of ``layer_precision`` at a precision below 8 bits (``int4``, ``palette2``: a
    compressor's declared precision with an ``encode`` method) encoded by that compressor with
    its precision's options, their weights in ``model`` set to the encoded values (in place);
    the other layers are left to the caller."""
    from slimnas.compress._base import COMPRESSORS, precision_steps

    steps = precision_steps()
    groups: dict[str, list[str]] = {}
    for name, p in layer_precision.items():
        if p in steps and callable(getattr(COMPRESSORS.get(steps[p][0]), "encode", None)):
            groups.setdefault(p, []).append(name)
    weights: dict[str, LowBitWeight] = {}
    for p, names in groups.items():
        compressor, options = steps[p]
        weights.update(COMPRESSORS.get(compressor)(**options).encode(model, data, names))
    return weights


class LowBitLayers:
    """What a low-bit compressor (int4, palettes) says about its layers, from ``held_`` (each
    layer's "how it is held"; ``fp32: <why>`` where it stayed fp32) and ``precision_family``
    (``int``, ``palette``) with ``bits``: the precision it gives each layer, the layers it left
    alone and why, and whether it left them all."""

    precision_family = ""

    def layer_values(self, layers):
        return {n: f"{self.precision_family}{self.bits}" for n in layers if self.layers is None or n in self.layers}

    def not_done(self):
        return {n: how.removeprefix("fp32: ") for n, how in getattr(self, "held_", {}).items() if how.startswith("fp32")}

    def did_nothing(self):
        held = getattr(self, "held_", {})
        return bool(held) and all(how.startswith("fp32") for how in held.values())
