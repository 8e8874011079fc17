"""Unstructured magnitude pruning, with the bytes of a real sparse file.

Zeroing single weights (Han et al. 2015, "Learning both Weights and Connections") makes no
dense runtime faster and no dense file smaller, so the size reported here is that of a file
that stores only the surviving weights: a one-bit-per-weight mask plus the non-zero values,
zip-compressed. Use structured pruning for speed.
"""

from __future__ import annotations

import copy
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimnas.compress._base import WEIGHTED, BaseCompressor, register_compressor, weighted_layers
from slimnas.compress._distill import Retrain
from slimnas.compress._prune import check_ratio
from slimnas.errors import ConfigError


def sparsity(model: nn.Module) -> float:
    """Share of exactly-zero values among the weights of Linear and conv layers."""
    total = zeros = 0
    for m in model.modules():
        if isinstance(m, WEIGHTED):
            total += m.weight.numel()
            zeros += int((m.weight == 0).sum())
    return zeros / max(total, 1)


def save_sparse(model: nn.Module, path: str | Path) -> int:
    """Write the state dict as a compressed sparse ``.npz``; returns the file's bytes.

    A tensor with zeros is stored as ``<name>.mask`` (bits) and ``<name>.values`` (non-zeros);
    a tensor without is stored dense. :func:`load_sparse` reads it back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for name, t in model.state_dict().items():
        a = t.detach().cpu().numpy()
        mask = a != 0
        if a.dtype.kind == "f" and a.size > 8 and not mask.all():
            arrays[f"{name}.mask"] = np.packbits(mask.ravel())
            arrays[f"{name}.values"] = a[mask]
            arrays[f"{name}.shape"] = np.asarray(a.shape, dtype=np.int32)
        else:
            arrays[name] = a
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path.stat().st_size


def load_sparse(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict written by :func:`save_sparse`."""
    out: dict[str, torch.Tensor] = {}
    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        for key in keys:
            if key.endswith(".mask"):
                name = key[: -len(".mask")]
                shape = tuple(int(s) for s in f[f"{name}.shape"])
                mask = np.unpackbits(f[key])[: int(np.prod(shape))].astype(bool)
                dense = np.zeros(mask.size, dtype=f[f"{name}.values"].dtype)
                dense[mask] = f[f"{name}.values"]
                out[name] = torch.from_numpy(dense.reshape(shape))
            elif not key.endswith((".values", ".shape")):
                out[key] = torch.from_numpy(np.array(f[key]))
    return out


def sparse_bytes(model: nn.Module) -> int:
    """Bytes of the file :func:`save_sparse` writes for ``model`` (written to memory, measured)."""
    with tempfile.TemporaryDirectory() as tmp:
        return save_sparse(model, Path(tmp) / "sparse.npz")


@register_compressor("unstructured")
class MagnitudePruner(BaseCompressor):
    """Zero the smallest-magnitude weights of Linear and conv layers.

    Args:
        sparsity: share of weights set to zero (``0 <= sparsity < 1``).
        scope: ``global`` ranks all weights together; ``layer`` prunes each layer to ``sparsity``.
        layers: module names to prune (all Linear and conv layers by default).
        retrain: retraining with the zeros held fixed (their gradients are masked).

    Learned state: ``model_``, ``masks_`` (name -> bool tensor of kept weights), ``sparsity_``,
    ``sparse_bytes_`` (bytes of the sparse file), ``dense_bytes_`` (fp32 weight payload).

    Example:
        >>> p = MagnitudePruner(sparsity=0.75).fit(torch.nn.Linear(8, 4), input_shape=(8,))
        >>> p.sparsity_
        0.75
    """

    def __init__(self, sparsity: float = 0.5, scope: str = "global", *, layers: Sequence[str] | None = None,
                 retrain: Retrain | None = None) -> None:
        self._store(locals())

    order = 15  # zeros survive low rank poorly: sparsify before factorising, clustering, quantizing

    def validate(self) -> None:
        check_ratio(self.sparsity, "unstructured.sparsity")
        if self.scope not in ("global", "layer"):
            raise ConfigError("unstructured.scope", "'global' or 'layer'", self.scope)

    conformance_options = {"sparsity": 0.5}

    def is_noop(self) -> bool:
        return self.sparsity == 0

    def reference_model(self, original):
        """The original with the pruned weights zeroed (without retraining)."""
        if self.retrain and self.retrain.epochs:
            return None
        model = copy.deepcopy(original)
        apply_masks(model, self.masks_)
        return model.eval()

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        modules = dict(model.named_modules())
        names = weighted_layers(model, self.layers, "unstructured.layers")
        weights = {n: modules[n].weight.detach() for n in names}
        if self.scope == "global":
            everything = torch.cat([w.abs().flatten() for w in weights.values()])
            threshold = _kth_smallest(everything, self.sparsity)
            self.masks_ = {n: w.abs() > threshold for n, w in weights.items()}
        else:
            self.masks_ = {n: w.abs() > _kth_smallest(w.abs().flatten(), self.sparsity) for n, w in weights.items()}
        apply_masks(model, self.masks_)
        hooks = [modules[n].weight.register_hook(lambda g, m=mask: g * m) for n, mask in self.masks_.items()]
        try:
            (self.retrain or Retrain()).run(model, data, teacher)
        finally:
            for h in hooks:
                h.remove()
        apply_masks(model, self.masks_)  # optimizers with momentum cannot revive a zero; re-mask anyway
        self.sparsity_ = sparsity(model)
        self.sparse_bytes_ = sparse_bytes(model)
        self.dense_bytes_ = int(sum(t.numel() * t.element_size() for t in model.state_dict().values()
                                    if t.is_floating_point()))
        self.report_ = {"sparsity": self.sparsity_, "sparse_bytes": self.sparse_bytes_,
                        "dense_bytes": self.dense_bytes_, "scope": self.scope}
        return model


def _kth_smallest(values: torch.Tensor, share: float) -> float:
    """The magnitude at or below which ``share`` of ``values`` lie (``-1`` for share 0)."""
    k = int(round(share * values.numel()))
    if k <= 0:
        return -1.0
    return float(torch.kthvalue(values, k).values)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        modules[name].weight.mul_(mask.to(modules[name].weight.dtype))
