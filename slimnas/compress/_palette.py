"""Palettization: each layer's weights as a k-means lookup table of ``2^bits`` values (1-8 bits),
per tensor, per group of output channels or per output channel, written into the ONNX file as
bit-packed indices plus the table (Apple coremltools' palettization, its ``per_grouped_channel``
granularity and fp16 tables included; Han et al. 2016's weight sharing, stored as it is counted).

The clustering is calibrated by default (``clustering="sensitive"``), from the layer's input
Hessian ``H = X^T X`` over calibration samples (as GPTQ's): the k-means weights each weight by
``H``'s diagonal at its input (SqueezeLLM, Kim et al. 2024; coremltools' sensitive k-means: an
error on a weight moves the output by about its square times that), the indices are then chosen
one input column at a time with GPTQ's error feedback (each column's error spread over the
columns not yet assigned), and the table values refitted by least squares on the layer's output
error ``tr(dW H dW^T)`` for those indices. On MNIST-1D this lowers the 4-bit palettes' logit
error 3.5-4x against plain k-means (``benchmarks/low_bit.py``).

The file unpacks the indices and looks them up in the graph (:mod:`slimnas.compress._lowbit`);
ONNX Runtime folds that at load, so the model runs at fp32 speed while the file on disk holds
``bits`` per weight plus the tables: the bytes reported are the file's. Weights already
clustered (a ``cluster`` step before, with at most ``2^bits`` shared values per layer) keep their
values: k-means with as many clusters as distinct values changes nothing (exactly with
``table="fp32"``, as ``--cluster K`` writes them; rounded to fp16 with the default fp16 tables).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from slimnas.compress._base import WEIGHTED, BaseCompressor, register_compressor
from slimnas.compress._cluster import kmeans_1d
from slimnas.compress._gptq import DAMP, input_hessians, obq_columns
from slimnas.compress._lowbit import LowBitLayers, LowBitWeight, lowbit_onnx
from slimnas.compress._quality import Quality, file_quality
from slimnas.errors import ConfigError
from slimnas.export._proto import size_report

GRANULARITIES = ("tensor", "group", "channel")
TABLES = ("fp16", "fp32")
CLUSTERINGS = ("sensitive", "kmeans")
N_INIT = 4  # k-means starts of the sensitive clustering: the quantile start and 3 k-means++ starts
EXPORT_TOLERANCE = 1e-3  # the file computes with the table values in fp32 (as FP32_TOLERANCE of an fp32 file)


def palettize(w: np.ndarray, bits: int, granularity: str = "tensor", *, group_size: int = 16, seed: int = 0,
              hessian: np.ndarray | None = None, n_init: int = 1, table: str = "fp32") -> LowBitWeight:
    """``w`` (``(out, ...)``) as indices into a k-means table of at most ``2^bits`` values: one
    table for the tensor, one per group of ``group_size`` output channels, or one per channel.

    Args:
        hessian: the layer's input Hessian ``X^T X / n`` (``(L, L)`` for ``w.reshape(out, -1)``),
            or ``None``. Given, the k-means weights each weight by the Hessian's diagonal at its
            input column, the indices are chosen by GPTQ's error feedback (each column's error
            spread over the columns not yet assigned) and the table values are then refitted by
            least squares on the layer's output error ``tr(dW H dW^T)``.
        n_init: k-means starts (the quantile start, then k-means++ ones); the best is kept.
        table: ``fp16`` (as Core ML stores its lookup tables; fp32 where a value is beyond
            fp16's range) or ``fp32`` (the values exactly, such as a ``cluster`` step's shared
            values).
    """
    rows = w.reshape(w.shape[0], -1).astype(np.float32)
    c, n = rows.shape
    group = c if granularity == "tensor" else 1 if granularity == "channel" else max(1, min(group_size, c))
    starts = range(0, c, group)
    sw = None if hessian is None else np.maximum(np.diag(hessian), 0.0)
    found = [kmeans_1d(rows[i : i + group], 2**bits, seed=seed, n_init=n_init,
                       sample_weight=None if sw is None else np.broadcast_to(sw, rows[i : i + group].shape))
             for i in starts]
    k = max(len(t) for t, _ in found)
    tables = np.stack([np.pad(t, (0, k - len(t)), mode="edge") for t, _ in found]).astype(np.float64)
    which = np.arange(c) // group  # each row's table
    exact = all(len(t) == len(np.unique(rows[i : i + group])) for (t, _), i in zip(found, starts, strict=True))
    half = table == "fp16" and bool(np.all(np.abs(tables) <= np.finfo(np.float16).max))
    dtype = np.float16 if half else np.float32
    tables = tables.astype(dtype).astype(np.float64)  # the values the file holds
    # each weight to its nearest table value (k-means may stop before its last assignment step;
    # the tables are sorted: the nearest value lies between midpoints)
    codes = np.empty((c, n), np.int64)
    for j, i in enumerate(starts):
        codes[i : i + group] = np.searchsorted((tables[j, 1:] + tables[j, :-1]) / 2, rows[i : i + group])
    if hessian is not None and not exact:  # (weights already on their tables keep them: a cluster step's values)
        codes = _gptq_codes(rows, hessian, tables[which])
        tables = _refit_tables(rows, hessian, tables, codes, which)
        if np.any(np.abs(tables) > np.finfo(np.float16).max):
            dtype = np.float32
    used = max(1, math.ceil(math.log2(max(k, 2))))  # fewer distinct values: fewer bits
    return LowBitWeight(codes, used, tables.astype(dtype), None, n, tuple(w.shape),
                        group=group if len(tables) > 1 else 1)


def _gptq_codes(rows: np.ndarray, hessian: np.ndarray, per_row: np.ndarray) -> np.ndarray:
    """Indices into each row's table (``per_row``, ``(C, k)``) chosen one input column at a
    time by GPTQ's error feedback."""
    work = torch.from_numpy(rows.astype(np.float64)).clone()
    t = torch.from_numpy(per_row)
    codes = torch.zeros(work.shape, dtype=torch.int64)

    def nearest(i, col):
        codes[:, i] = (col[:, None] - t).abs().argmin(1)
        return torch.gather(t, 1, codes[:, i : i + 1])[:, 0]

    obq_columns(work, hessian, nearest)
    return codes.numpy()


def _refit_tables(rows: np.ndarray, hessian: np.ndarray, tables: np.ndarray, codes: np.ndarray,
                  which: np.ndarray) -> np.ndarray:
    """The table values that minimise ``sum_c (w_c - t[codes_c]) H (w_c - t[codes_c])^T`` for the
    given indices (least squares, damped a little towards the k-means values)."""
    h = np.asarray(hessian, np.float64)
    n, k = rows.shape[1], tables.shape[1]
    damp = DAMP * max(float(np.mean(np.diag(h))), 1e-12)
    chunk = max(1, 2**21 // (n * k))  # rows per step: the one-hot indices take n * k each
    out = tables.copy()
    for j in range(len(tables)):
        members = np.flatnonzero(which == j)
        m, b, count = np.zeros((k, k)), np.zeros(k), np.zeros(k)
        for s in range(0, len(members), chunk):
            part = members[s : s + chunk]
            a = np.zeros((len(part), n, k))
            np.put_along_axis(a, codes[part][:, :, None], 1.0, 2)  # one-hot (rows, L, k)
            ha = np.matmul(h, a)  # (rows, L, k)
            m += a.reshape(-1, k).T @ ha.reshape(-1, k)
            b += rows[part].astype(np.float64).reshape(-1) @ ha.reshape(-1, k)
            count += a.sum((0, 1))
        reg = damp * np.maximum(count, 1)
        out[j] = np.linalg.solve(m + np.diag(reg), b + reg * tables[j])
    return out


def palette_layers(model: nn.Module, layers=None) -> list[str]:
    """The layers a palette acts on: ``layers`` (each a Linear, convolution or embedding; a
    :class:`ConfigError` otherwise), or every Linear, convolution and ``nn.Embedding``."""
    modules = dict(model.named_modules())
    kinds = (*WEIGHTED, nn.Embedding)
    names = list(layers) if layers is not None else [n for n, m in modules.items() if isinstance(m, kinds)]
    bad = [n for n in names if not isinstance(modules.get(n), kinds)]
    if bad:
        raise ConfigError("layers", "names of Linear, convolution or embedding layers", bad[0])
    return names


def round_norm_factors(model: nn.Module, names: list[str]) -> list[str]:
    """Round to fp16 the per-channel factor ``weight / sqrt(running_var + eps)`` of each batch
    norm that follows one of the layers ``names`` (the next module, with as many features as the
    layer has outputs), by moving its ``weight`` by at most 2^-12 of itself; returns the batch
    norms changed. The exporter folds such a factor into the layer's weight; fp16 factors let
    the file hold it at fp16 beside fp16 tables, computing exactly what the model does."""
    modules = list(model.named_modules())
    changed = []
    for (name, m), (bn_name, bn) in zip(modules, modules[1:], strict=False):
        if (name not in names or not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not bn.affine
                or bn.running_var is None or bn.num_features != m.weight.shape[0]):
            continue
        with torch.no_grad():
            root = torch.sqrt(bn.running_var + bn.eps)
            factor = bn.weight / root
            half = factor.half().float()
            if torch.isfinite(half).all():
                bn.weight.copy_(half * root)
                changed.append(bn_name)
    return changed


@register_compressor("palette")
class Palettizer(LowBitLayers, BaseCompressor):
    """Palettize every Linear, convolution and embedding layer's weights to ``bits``-bit lookup
    tables (an ``nn.Embedding``'s table is unpacked in the file before its ``Gather``; its rows are
    tokens, clustered by plain k-means: there is no input Hessian of a lookup).

    Args:
        bits: 1 to 8 (``--quantize palette4``: 4).
        granularity: ``tensor`` (one table per layer), ``group`` (one per ``group_size`` output
            channels: coremltools' ``per_grouped_channel``) or ``channel`` (one per output channel).
        group_size: output channels sharing a table when ``granularity="group"``.
        table: the tables' type in the file: ``fp16`` (Core ML's; each value moves by at most
            2^-11 of itself, far below a table's spacing) or ``fp32`` (the values exactly).
        clustering: ``sensitive`` (from the layer's input Hessian over ``n_calibration``
            training samples: k-means weighting each weight by its diagonal, best of 4 starts,
            indices by GPTQ's error feedback, tables refitted by least squares; plain k-means
            with 4 starts where there is no data or the layer's input cannot be taken, such as a
            grouped convolution) or ``kmeans`` (plain k-means from the quantiles, one start,
            each weight to its nearest value).
        layers: module names (every Linear, convolution and embedding by default).

    Learned state: ``model_`` (computing with the table values), ``weights_`` (layer ->
    :class:`~slimnas.compress._lowbit.LowBitWeight`), ``onnx_`` (the palettized file), ``precision_``,
    ``held_`` (layer -> how the file holds it), ``clustered_`` (layer -> ``sensitive`` or
    ``kmeans``), ``val_accuracy_`` (ONNX Runtime).

    Example:
        >>> p = Palettizer(bits=2).fit(torch.nn.Linear(64, 8), input_shape=(64,))
        >>> len(torch.unique(p.model_.weight))
        4
    """

    def __init__(self, bits: int = 4, *, granularity: str = "tensor", group_size: int = 16, table: str = "fp16",
                 clustering: str = "sensitive", n_calibration: int = 256, layers: list[str] | None = None) -> None:
        self._store(locals())

    order = 90
    precision_family = "palette"  # its layers are palette{bits}
    retrains = False
    writes_file = True
    layer_column = "precision"
    layer_off = "fp32"
    precisions = {f"palette{b}": {"bits": b} for b in range(1, 9)}
    conformance_options = {"bits": 3, "granularity": "group", "group_size": 2, "clustering": "kmeans"}

    def validate(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in range(1, 9):
            raise ConfigError("palette.bits", "an integer from 1 to 8", self.bits)
        if self.granularity not in GRANULARITIES:
            raise ConfigError("palette.granularity", f"one of {list(GRANULARITIES)}", self.granularity)
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size < 1:
            raise ConfigError("palette.group_size", "an integer >= 1 (output channels per table)", self.group_size)
        if self.table not in TABLES:
            raise ConfigError("palette.table", f"one of {list(TABLES)}", self.table)
        if self.clustering not in CLUSTERINGS:
            raise ConfigError("palette.clustering", f"one of {list(CLUSTERINGS)}", self.clustering)
        if isinstance(self.n_calibration, bool) or not isinstance(self.n_calibration, int) or self.n_calibration < 1:
            raise ConfigError("palette.n_calibration", "an integer >= 1 (training samples)", self.n_calibration)

    def export_tolerance(self) -> float:
        return EXPORT_TOLERANCE

    def reference_model(self, original):
        """The original with each weight replaced by the nearest value of its table, found here,
        and its batch norms' factors rounded to fp16 as :func:`round_norm_factors` does (``None``
        where the sensitive clustering chose the indices by error feedback, not nearest)."""
        if "sensitive" in self.clustered_.values():
            return None
        model = copy.deepcopy(original)
        modules = dict(model.named_modules())
        with torch.no_grad():
            for name, lw in self.weights_.items():
                w = modules[name].weight
                rows = w.reshape(w.shape[0], -1)
                table = torch.from_numpy(lw.table.astype(np.float32))
                table = table.expand(rows.shape[0], -1) if len(table) == 1 else table[torch.arange(rows.shape[0]) // lw.group]
                nearest = (rows[:, :, None] - table[:, None, :]).abs().argmin(2)
                w.copy_(torch.gather(table, 1, nearest).reshape(w.shape))
        if self.table == "fp16":
            round_norm_factors(model, list(self.weights_))
        return model.eval()

    def encode(self, model, data, names: list[str]) -> dict[str, LowBitWeight]:
        """``names``' weights palettized, and ``model``'s weights (changed in place) their table values."""
        modules = dict(model.named_modules())
        sensitive = self.clustering == "sensitive"
        hessians = {} if not sensitive or data is None or getattr(data, "x_train", None) is None else \
            input_hessians(model, [n for n in names if not isinstance(modules[n], nn.Embedding)],
                           data.x_train[: self.n_calibration])
        weights = {}
        self.clustered_ = {}
        for name in names:
            h = hessians.get(name)
            lw = palettize(modules[name].weight.detach().cpu().numpy(), self.bits, self.granularity,
                           group_size=self.group_size, hessian=h,
                           n_init=N_INIT if sensitive else 1, table=self.table)
            self.clustered_[name] = "sensitive" if h is not None else "kmeans"
            weights[name] = lw
            with torch.no_grad():
                modules[name].weight.copy_(torch.from_numpy(lw.dequantize()))
        return weights

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        names = palette_layers(model, self.layers)
        self.weights_ = self.encode(model, data, names)
        if self.table == "fp16":
            self.rounded_norms_ = round_norm_factors(model, names)
        model = model.eval()
        self.onnx_, self.held_ = lowbit_onnx(model, input_shape, self.weights_, matmul_nbits=False)
        self.storage_bytes_ = len(self.onnx_)  # what is stored is the file
        self.precision_ = f"palette{self.bits}"
        self.val_accuracy_ = None if data is None else file_quality(data, self.onnx_)
        self.report_ = {"bits": self.bits, "granularity": self.granularity,
                        **({"group_size": self.group_size} if self.granularity == "group" else {}),
                        "tables": sorted({str(lw.table.dtype).replace("float", "fp") for lw in self.weights_.values()}),
                        "clustered": self.clustered_, Quality.of(getattr(data, "task", None)).key: self.val_accuracy_,
                        "layers": self.held_,
                        "palette_bytes": int(sum(self.weights_[n].n_bytes for n in names if not self.held_[n].startswith("fp32"))),
                        **size_report(self.onnx_)}
        return model

