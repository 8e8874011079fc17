"""Weight sharing by k-means clustering, per layer (Han et al. 2016, "Deep Compression").

Each layer's weights are replaced by the nearest of ``k`` shared values: the layer is stored as
a codebook of ``k`` floats plus one ``ceil(log2 k)``-bit index per weight. Retraining updates
the shared values (each gets the summed gradient of its weights) and keeps the assignment.

The ``palette`` step (:mod:`slimnas.compress._palette`) writes that encoding into the ONNX file
(the same k-means and bit packing); ``compress --cluster K`` without a ``--quantize`` adds it,
so the file shipped is the size counted here.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from slimnas.compress._base import BaseCompressor, Gene, register_compressor, weighted_layers
from slimnas.compress._distill import Retrain
from slimnas.compress._lowbit import pack_codes, unpack_codes
from slimnas.errors import ConfigError
from slimnas.spaces import Key


def kmeans_1d(values: np.ndarray, k: int, *, seed: int = 0, sample_weight: np.ndarray | None = None,
              n_init: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(codebook, indices)`` of 1-D k-means; at most as many clusters as distinct values.

    Initialised at the quantiles of the values (density-based), so that with ``k`` equal to the
    number of distinct values every value is its own centroid and nothing changes.

    Args:
        sample_weight: each value's weight in the squared error k-means minimises (a
            sensitivity: the centroids are weighted means), or ``None`` (all 1).
        n_init: ``> 1``: also ``n_init - 1`` k-means++ starts, the one of lowest (weighted)
            squared error kept.
    """
    from sklearn.cluster import KMeans

    flat = values.reshape(-1).astype(np.float64)
    distinct = np.unique(flat)
    k = min(k, len(distinct))
    sw = None if sample_weight is None else np.broadcast_to(sample_weight, values.shape).reshape(-1).astype(np.float64)
    if k == len(distinct):  # every value its own centroid: exactly the values
        return distinct.astype(np.float32), np.searchsorted(distinct, flat).astype(np.int64).reshape(values.shape)
    init = np.quantile(distinct, np.linspace(0, 1, k), method="nearest").reshape(-1, 1)
    starts = [dict(init=init, n_init=1)] + ([dict(init="k-means++", n_init=n_init - 1)] if n_init > 1 else [])
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when clusters coincide
        for start in starts:
            km = KMeans(n_clusters=k, max_iter=100, random_state=seed, **start).fit(flat.reshape(-1, 1), sample_weight=sw)
            if best is None or km.inertia_ < best.inertia_:
                best = km
    labels = best.labels_
    w = None if sw is None else sw + 1e-12 * max(float(sw.mean()), 1e-30)  # a cluster of weight 0 keeps a mean
    # centroids as plain (weighted) member means: scikit-learn centres the data first, which
    # leaves rounding noise (a cluster of zeros gets a centroid of 1e-18)
    codebook = np.array([np.average(flat[labels == j], weights=None if w is None else w[labels == j])
                         if (labels == j).any() else c for j, c in enumerate(best.cluster_centers_.reshape(-1))])
    order = np.argsort(codebook)
    remap = np.empty_like(order)
    remap[order] = np.arange(k)
    return codebook[order].astype(np.float32), remap[labels].astype(np.int64).reshape(values.shape)


def pack_indices(indices: np.ndarray, n_clusters: int) -> bytes:
    """Indices at ``ceil(log2 k)`` bits each, bit-packed as the palettized ONNX file stores them
    (:func:`slimnas.compress._lowbit.pack_codes`): the clustered encoding's payload."""
    return pack_codes(indices, _index_bits(n_clusters)).tobytes()


def unpack_indices(payload: bytes, n_clusters: int, n: int) -> np.ndarray:
    return unpack_codes(np.frombuffer(payload, dtype=np.uint8), _index_bits(n_clusters), n)


def _index_bits(n_clusters: int) -> int:
    return max(1, math.ceil(math.log2(max(n_clusters, 2))))


class _Shared(nn.Module):
    """Parametrization: weight = codebook[indices], with the codebook trainable."""

    def __init__(self, codebook: np.ndarray, indices: np.ndarray) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.from_numpy(codebook))
        self.register_buffer("indices", torch.from_numpy(indices))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.codebook[self.indices].to(weight.dtype)


@register_compressor("cluster")
class WeightClusterer(BaseCompressor):
    """Cluster each layer's weights into ``n_clusters`` shared values.

    Args:
        n_clusters: shared values per layer (``k >= 2``).
        layers: module names (every Linear and conv layer by default).
        layer_clusters: module name -> its own count of shared values (those layers only, then;
            ``--auto`` clusters each layer it palettizes to the palette's size, so the fine-tune
            trains the values the file's table holds).
        retrain: fine-tuning of the shared values, assignments fixed.

    Learned state: ``model_``, ``codebooks_`` (name -> values), ``indices_`` (name -> int array),
    ``encoded_bytes_`` (codebooks + packed indices + the other tensors at fp32),
    ``dense_bytes_`` (fp32 payload before).

    Example:
        >>> c = WeightClusterer(n_clusters=4).fit(torch.nn.Linear(16, 8), input_shape=(16,))
        >>> len(torch.unique(c.model_.weight))
        4
    """

    def __init__(self, n_clusters: int = 16, *, layers: Sequence[str] | None = None,
                 layer_clusters: dict[str, int] | None = None, retrain: Retrain | None = None) -> None:
        self._store(locals())

    order = 30
    genes = {"cluster": Gene(Key(int, "0 (off) or a cluster count >= 2", [0], lambda v: v == 0 or v >= 2))}

    @classmethod
    def options_from_genes(cls, values):
        return {"n_clusters": int(values["cluster"])} if values["cluster"] else None

    conformance_options = {"n_clusters": 4}

    def reference_model(self, original):
        """The original with every clustered weight replaced by its cluster's shared value."""
        if self.retrain and self.retrain.epochs:
            return None
        model = copy.deepcopy(original)
        modules = dict(model.named_modules())
        with torch.no_grad():
            for name, codebook in self.codebooks_.items():
                modules[name].weight.copy_(torch.from_numpy(codebook[self.indices_[name]]))
        return model.eval()

    def validate(self) -> None:
        if isinstance(self.n_clusters, bool) or not isinstance(self.n_clusters, int) or self.n_clusters < 2:
            raise ConfigError("cluster.n_clusters", "an integer >= 2", self.n_clusters)
        for name, k in (self.layer_clusters or {}).items():
            if isinstance(k, bool) or not isinstance(k, int) or k < 2:
                raise ConfigError(f"cluster.layer_clusters.{name}", "an integer >= 2", k)

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        modules = dict(model.named_modules())
        layers = list(self.layer_clusters) if self.layer_clusters is not None else self.layers
        names = weighted_layers(model, layers, "cluster.layers")
        self.dense_bytes_ = _float_bytes(model)
        self.codebooks_, self.indices_ = {}, {}
        seed = (self.retrain or Retrain()).seed
        for name in names:
            k = (self.layer_clusters or {}).get(name, self.n_clusters)
            codebook, idx = kmeans_1d(modules[name].weight.detach().cpu().numpy(), k, seed=seed)
            parametrize.register_parametrization(modules[name], "weight", _Shared(codebook, idx))
            self.indices_[name] = idx
        history = None
        try:
            history = (self.retrain or Retrain()).run(model, data, teacher)
        finally:
            for name in names:
                self.codebooks_[name] = modules[name].parametrizations.weight[0].codebook.detach().numpy().copy()
                parametrize.remove_parametrizations(modules[name], "weight", leave_parametrized=True)
        self.encoded_bytes_ = self.storage_bytes_ = clustered_bytes(model, self.codebooks_, self.indices_)
        self.report_ = {"n_clusters": self.layer_clusters or self.n_clusters, "encoded_bytes": self.encoded_bytes_,
                        "dense_bytes": self.dense_bytes_, "layers": names,
                        "epochs_run": len(history.epochs) if history else 0}
        return model.eval()


def _float_bytes(model: nn.Module) -> int:
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.is_floating_point()))


def clustered_bytes(model: nn.Module, codebooks: dict[str, np.ndarray], indices: dict[str, np.ndarray]) -> int:
    """Bytes of the clustered encoding: fp32 codebooks, packed indices, other tensors dense fp32."""
    total = 0
    clustered = {f"{name}.weight" if name else "weight" for name in codebooks}
    for key, t in model.state_dict().items():
        if t.is_floating_point() and key not in clustered:
            total += t.numel() * t.element_size()
    for name, codebook in codebooks.items():
        total += codebook.nbytes + len(pack_indices(indices[name], len(codebook)))
    return int(total)
