"""Palettization: each layer's weights as a k-means lookup table of ``2^bits`` values (1-8 bits),
per tensor or per output channel, written into the ONNX file as bit-packed indices plus the table
(Apple coremltools' palettization; Han et al. 2016's weight sharing, stored as it is counted).

The file unpacks the indices and looks them up in the graph (:mod:`slimnas.compress._lowbit`);
ONNX Runtime folds that at load, so the model runs at fp32 speed while the file on disk holds
``bits`` per weight plus the tables: the bytes reported are the file's. Weights already
clustered (a ``cluster`` step before, with at most ``2^bits`` shared values per layer) keep their
values exactly: k-means with as many clusters as distinct values changes nothing.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from slimnas.compress._base import BaseCompressor, register_compressor, weighted_layers
from slimnas.compress._cluster import kmeans_1d
from slimnas.compress._lowbit import LowBitLayers, LowBitWeight, lowbit_onnx
from slimnas.compress._quality import Quality, file_quality
from slimnas.errors import ConfigError
from slimnas.export._proto import size_report

GRANULARITIES = ("tensor", "channel")
EXPORT_TOLERANCE = 1e-3  # the file computes with the table values in fp32 (as FP32_TOLERANCE of an fp32 file)


def palettize(w: np.ndarray, bits: int, granularity: str = "tensor", *, seed: int = 0) -> LowBitWeight:
    """``w`` (``(out, ...)``) as indices into a k-means table of at most ``2^bits`` values: one
    table for the tensor, or one per output channel."""
    rows = w.reshape(w.shape[0], -1)
    if granularity == "tensor":
        table, idx = kmeans_1d(rows, 2**bits, seed=seed)
        tables, codes = table[None, :], idx.reshape(rows.shape)
    else:
        found = [kmeans_1d(r, 2**bits, seed=seed) for r in rows]
        k = max(len(t) for t, _ in found)
        tables = np.stack([np.pad(t, (0, k - len(t)), mode="edge") for t, _ in found])
        codes = np.stack([i for _, i in found])
    # each weight to its nearest table value (k-means may stop before its last assignment step)
    table_rows = tables if len(tables) > 1 else np.broadcast_to(tables, (rows.shape[0], tables.shape[1]))
    codes = np.abs(rows[:, :, None] - table_rows[:, None, :]).argmin(2)
    used = max(1, math.ceil(math.log2(max(tables.shape[1], 2))))  # fewer distinct values: fewer bits
    return LowBitWeight(codes.astype(np.int64), used, tables.astype(np.float32), None, rows.shape[1], tuple(w.shape))


@register_compressor("palette")
class Palettizer(LowBitLayers, BaseCompressor):
    """Palettize every Linear and convolution layer's weights to ``bits``-bit lookup tables.

    Args:
        bits: 1 to 8 (``--quantize palette4``: 4).
        granularity: ``tensor`` (one table per layer) or ``channel`` (one per output channel).
        layers: module names (every Linear and convolution by default).

    Learned state: ``model_`` (computing with the table values), ``weights_`` (layer ->
    :class:`~slimnas.compress._lowbit.LowBitWeight`), ``onnx_`` (the palettized file), ``precision_``,
    ``held_`` (layer -> how the file holds it), ``val_accuracy_`` (ONNX Runtime).

    Example:
        >>> p = Palettizer(bits=2).fit(torch.nn.Linear(64, 8), input_shape=(64,))
        >>> len(torch.unique(p.model_.weight))
        4
    """

    def __init__(self, bits: int = 4, *, granularity: str = "tensor", layers: list[str] | None = None) -> None:
        self._store(locals())

    order = 90
    precision_family = "palette"  # its layers are palette{bits}
    retrains = False
    writes_file = True
    layer_column = "precision"
    layer_off = "fp32"
    precisions = {f"palette{b}": {"bits": b} for b in range(1, 9)}
    conformance_options = {"bits": 3, "granularity": "channel"}

    def validate(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in range(1, 9):
            raise ConfigError("palette.bits", "an integer from 1 to 8", self.bits)
        if self.granularity not in GRANULARITIES:
            raise ConfigError("palette.granularity", f"one of {list(GRANULARITIES)}", self.granularity)

    def export_tolerance(self) -> float:
        return EXPORT_TOLERANCE

    def reference_model(self, original):
        """The original with each weight replaced by the nearest value of its table, found here."""
        model = copy.deepcopy(original)
        modules = dict(model.named_modules())
        with torch.no_grad():
            for name, lw in self.weights_.items():
                w = modules[name].weight
                rows = w.reshape(w.shape[0], -1)
                table = torch.from_numpy(lw.table)
                table = table.expand(rows.shape[0], -1) if len(table) == 1 else table
                nearest = (rows[:, :, None] - table[:, None, :]).abs().argmin(2)
                w.copy_(torch.gather(table, 1, nearest).reshape(w.shape))
        return model.eval()

    def encode(self, model, data, names: list[str]) -> dict[str, LowBitWeight]:
        """``names``' weights palettized, and ``model``'s weights (changed in place) their table values."""
        modules = dict(model.named_modules())
        weights = {}
        for name in names:
            lw = palettize(modules[name].weight.detach().cpu().numpy(), self.bits, self.granularity)
            weights[name] = lw
            with torch.no_grad():
                modules[name].weight.copy_(torch.from_numpy(lw.dequantize()))
        return weights

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        names = weighted_layers(model, self.layers)
        self.weights_ = self.encode(model, data, names)
        model = model.eval()
        self.onnx_, self.held_ = lowbit_onnx(model, input_shape, self.weights_, matmul_nbits=False)
        self.storage_bytes_ = len(self.onnx_)  # what is stored is the file
        self.precision_ = f"palette{self.bits}"
        self.val_accuracy_ = None if data is None else file_quality(data, self.onnx_)
        self.report_ = {"bits": self.bits, "granularity": self.granularity, Quality.of(getattr(data, "task", None)).key: self.val_accuracy_,
                        "layers": self.held_,
                        "palette_bytes": int(sum(self.weights_[n].n_bytes for n in names if not self.held_[n].startswith("fp32"))),
                        **size_report(self.onnx_)}
        return model

