"""Low-rank factorisation of Linear and convolution layers, replacing them in place.

A Linear ``W = U S V^T`` truncated to rank ``r`` becomes ``Linear(in, r) -> Linear(r, out)``.
A convolution is either reshaped to ``(out, in * k)`` and split the same way into a ``k``-wide
convolution to ``r`` channels and a 1x1 one (Zhang et al. 2016, "Accelerating Very Deep
Convolutional Networks"), or Tucker-2 decomposed along its two channel modes into
1x1 -> k -> 1x1 convolutions (Kim et al. 2016, "Compression of Deep Convolutional Neural Networks
for Fast and Low Power Mobile Applications"), with the core from a truncated HOSVD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from slimnas.compress._base import BaseCompressor, Gene, register_compressor
from slimnas.compress._distill import Retrain
from slimnas.errors import ConfigError
from slimnas.models._layers import LowRank
from slimnas.spaces import Key

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def choose_rank(s: torch.Tensor, *, ratio: float | None, energy: float | None) -> int:
    """Rank keeping ``ratio`` of the singular values, or the least keeping ``energy`` of ``sum(s**2)``."""
    full = len(s)
    if energy is not None:
        share = torch.cumsum(s.double() ** 2, 0) / max(float((s.double() ** 2).sum()), 1e-300)
        return min(full, int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype) - 1e-12)) + 1)
    return max(1, min(full, math.ceil(float(ratio) * full)))


@torch.no_grad()
def factorize_linear(layer: nn.Linear, *, ratio: float | None = None, energy: float | None = None) -> LowRank:
    u, s, vh = torch.linalg.svd(layer.weight.double(), full_matrices=False)
    r = choose_rank(s, ratio=ratio, energy=energy)
    root = s[:r].sqrt()
    first = nn.Linear(layer.in_features, r, bias=False)
    second = nn.Linear(r, layer.out_features, bias=layer.bias is not None)
    first.weight.copy_((root[:, None] * vh[:r]).float())
    second.weight.copy_((u[:, :r] * root[None, :]).float())
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return LowRank(first, second)


def _conv_like(layer: nn.Module, in_ch: int, out_ch: int, *, kernel=None, bias=False, spatial=True) -> nn.Module:
    cls = type(layer)
    if not spatial:
        return cls(in_ch, out_ch, 1, bias=bias)
    return cls(in_ch, out_ch, kernel or layer.kernel_size, stride=layer.stride, padding=layer.padding,
               dilation=layer.dilation, bias=bias, padding_mode=layer.padding_mode)


@torch.no_grad()
def factorize_conv(layer: nn.Module, *, ratio: float | None = None, energy: float | None = None) -> LowRank:
    """Reshaped SVD: a ``k``-wide convolution to ``r`` channels, then a 1x1 convolution."""
    w = layer.weight.double()
    out_ch = w.shape[0]
    u, s, vh = torch.linalg.svd(w.reshape(out_ch, -1), full_matrices=False)
    r = choose_rank(s, ratio=ratio, energy=energy)
    root = s[:r].sqrt()
    first = _conv_like(layer, layer.in_channels, r)
    second = _conv_like(layer, r, out_ch, bias=layer.bias is not None, spatial=False)
    first.weight.copy_((root[:, None] * vh[:r]).reshape(r, *w.shape[1:]).float())
    second.weight.copy_((u[:, :r] * root[None, :]).reshape(out_ch, r, *([1] * (w.dim() - 2))).float())
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return LowRank(first, second)


@torch.no_grad()
def factorize_tucker2(layer: nn.Module, *, ratio: float | None = None, energy: float | None = None) -> LowRank:
    """Tucker-2 by truncated HOSVD: 1x1 (in -> r_in), ``k``-wide core (r_in -> r_out), 1x1 (r_out -> out)."""
    w = layer.weight.double()
    out_ch, in_ch = w.shape[:2]
    u_out, s_out, _ = torch.linalg.svd(w.reshape(out_ch, -1), full_matrices=False)
    u_in, s_in, _ = torch.linalg.svd(w.transpose(0, 1).reshape(in_ch, -1), full_matrices=False)
    r_out = choose_rank(s_out, ratio=ratio, energy=energy)
    r_in = choose_rank(s_in, ratio=ratio, energy=energy)
    u_out, u_in = u_out[:, :r_out], u_in[:, :r_in]
    core = torch.einsum("oi...,or,is->rs...", w, u_out, u_in)  # (r_out, r_in, *k)
    ones = [1] * (w.dim() - 2)
    first = _conv_like(layer, in_ch, r_in, spatial=False)
    middle = _conv_like(layer, r_in, r_out)
    last = _conv_like(layer, r_out, out_ch, bias=layer.bias is not None, spatial=False)
    first.weight.copy_(u_in.T.reshape(r_in, in_ch, *ones).float())
    middle.weight.copy_(core.float())
    last.weight.copy_(u_out.reshape(out_ch, r_out, *ones).float())
    if layer.bias is not None:
        last.bias.copy_(layer.bias)
    return LowRank(first, middle, last)


def n_weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@register_compressor("lowrank")
class LowRankFactorizer(BaseCompressor):
    """Replace Linear and conv layers by low-rank factors.

    Args:
        rank_ratio: share of each layer's full rank kept, in ``(0, 1]``.
        energy: keep the least rank retaining this share of the squared singular values
            (overrides ``rank_ratio``).
        layer_ratios: per-layer rank ratios by module name (override ``rank_ratio``); only
            these layers are factorised when ``layers`` is not given either (an empty mapping:
            none).
        layers: module names to factorise (every Linear and ungrouped conv by default).
        conv_method: ``svd`` (reshaped) or ``tucker2``.
        only_if_smaller: skip layers whose factors would hold at least as many weights.
        retrain: fine-tuning after the replacement.

    Learned state: ``model_``, ``ranks_`` (name -> rank or ``[r_in, r_out]``), ``skipped_``
    (name -> why).

    Example:
        >>> f = LowRankFactorizer(rank_ratio=0.25).fit(torch.nn.Sequential(torch.nn.Linear(64, 64)),
        ...                                             input_shape=(64,))
        >>> f.ranks_
        {'0': 16}
    """

    def __init__(
        self,
        rank_ratio: float = 0.5,
        *,
        energy: float | None = None,
        layer_ratios: Mapping[str, float] | None = None,
        layers: Sequence[str] | None = None,
        conv_method: str = "svd",
        only_if_smaller: bool = True,
        retrain: Retrain | None = None,
    ) -> None:
        self._store(locals())

    order = 20
    layer_column = "rank"
    layer_off = 1.0
    genes = {"lowrank": Gene(Key(float, "kept-rank ratios in (0, 1] (1 = not factorised)", [1.0],
                                 lambda v: 0 < v <= 1), layers="weighted")}

    @classmethod
    def options_from_genes(cls, values):
        ratios = {k: float(v) for k, v in values["lowrank"].items() if v < 1}
        return {"layer_ratios": ratios} if ratios else None

    conformance_options = {"rank_ratio": 1.0, "only_if_smaller": False}

    def validate(self) -> None:
        self._validate()

    def reference_model(self, original):
        """At full rank the factors multiply back to each layer: the original is the reference."""
        full = self.energy is None and self.rank_ratio == 1 and all(v == 1 for v in (self.layer_ratios or {}).values())
        return original if full and not (self.retrain and self.retrain.epochs) else None

    def is_noop(self) -> bool:
        return self.layers is not None and not self.layers or (
            self.layers is None and self.layer_ratios is not None and not self.layer_ratios)

    def not_done(self) -> dict[str, str]:
        return dict(self.skipped_)

    def did_nothing(self) -> bool:
        return not self.ranks_

    def layer_values(self, layers):
        if self.layer_ratios is not None:
            return {n: float(self.layer_ratios.get(n, 1.0)) for n in layers}
        chosen = set(layers if self.layers is None else self.layers)
        return {n: float(self.rank_ratio) if n in chosen else 1.0 for n in layers}

    def _fit(self, model, data, teacher, input_shape):
        self._validate()
        modules = dict(model.named_modules())
        ratios = dict(self.layer_ratios or {})
        if self.layers is not None:
            names = list(self.layers)
        elif self.layer_ratios is not None:
            names = list(ratios)
        else:
            names = [n for n, m in modules.items() if isinstance(m, (nn.Linear, *CONVS))
                     and not isinstance(_parent(modules, n), LowRank)]
        self.ranks_, self.skipped_ = {}, {}
        for name in names:
            layer = modules.get(name)
            if not isinstance(layer, (nn.Linear, *CONVS)):
                raise ConfigError("lowrank.layers", "names of Linear or conv layers", name)
            if isinstance(layer, CONVS) and layer.groups != 1:
                self.skipped_[name] = "grouped convolution"
                continue
            ratio = ratios.get(name, self.rank_ratio)
            energy = None if name in ratios else self.energy
            if isinstance(layer, nn.Linear):
                new = factorize_linear(layer, ratio=ratio, energy=energy)
            elif self.conv_method == "tucker2":
                new = factorize_tucker2(layer, ratio=ratio, energy=energy)
            else:
                new = factorize_conv(layer, ratio=ratio, energy=energy)
            if self.only_if_smaller and n_weights(new) >= n_weights(layer):
                self.skipped_[name] = f"factors hold {n_weights(new)} weights, the layer {n_weights(layer)}"
                continue
            model.set_submodule(name, new)
            ranks = [_width(m) for m in list(new)[:-1]]
            self.ranks_[name] = ranks[0] if len(ranks) == 1 else ranks
        history = (self.retrain or Retrain()).run(model, data, teacher)
        self.report_ = {"ranks": self.ranks_, "skipped": self.skipped_, "conv_method": self.conv_method,
                        "epochs_run": len(history.epochs) if history else 0}
        return model.eval()

    def _validate(self) -> None:
        for field, value in [("lowrank.rank_ratio", self.rank_ratio), ("lowrank.energy", self.energy),
                             *((f"lowrank.layer_ratios.{k}", v) for k, v in (self.layer_ratios or {}).items())]:
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value <= 1):
                raise ConfigError(field, "a ratio in (0, 1]", value)
        if self.conv_method not in ("svd", "tucker2"):
            raise ConfigError("lowrank.conv_method", "'svd' or 'tucker2'", self.conv_method)


def _width(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _parent(modules: dict[str, nn.Module], name: str) -> nn.Module | None:
    return modules.get(name.rpartition(".")[0]) if "." in name else None
