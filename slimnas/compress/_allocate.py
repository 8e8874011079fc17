"""Where a MAC budget's cuts go: per-layer ratios scaled to a target, channels given back to
use the whole budget, and a sensitivity-guided allocation (AMC, He et al. 2018, searches exactly
this per-layer ratio space; Li et al. 2017 allocate by sensitivity).

MACs depend on channel counts only, so every probe prunes a copy by magnitude and counts its
real MACs: any criterion gives the same structure at the same ratios.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from slimnas.compress._policy import CompressionPolicy
from slimnas.compress._prune import StructuredPruner, prunable_layers
from slimnas.compress._prune_layers import split_view
from slimnas.errors import ConfigError
from slimnas.measure import count_macs

MAX_RATIO = 0.95  # scale_to_macs never removes more than this share of a layer's channels
UNIFORM_SHAPE = 0.3  # ratio shape used when a policy prunes nothing but the MAC budget needs it


@dataclass(frozen=True)
class PrunableLayer:
    name: str
    kind: str
    out_channels: int
    macs: int


def list_prunable_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[PrunableLayer]:
    """Layers whose output channels structured pruning can remove, in forward order, with their
    widths and MACs per sample (the output layer is left out: its width is the class count)."""
    shapes: dict[str, tuple] = {}
    model = split_view(model)  # nn.MultiheadAttention split, as pruning sees it
    layers = prunable_layers(model, input_shape)

    def record(name: str):
        def hook(mod, args, out) -> None:  # returns None: a value would replace the output
            shapes.setdefault(name, tuple(args[0].shape[1:]))

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in layers]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = []
    for name, m in layers:
        width = m.hidden_size if isinstance(m, nn.RNNBase) else getattr(m, "out_channels", getattr(m, "out_features", 0))
        out.append(PrunableLayer(name, type(m).__name__, int(width), count_macs(m, shapes[name])))
    return out


def pruned_model(model: nn.Module, ratios: Mapping[str, float], input_shape) -> nn.Module:
    """A copy of ``model`` with the channels ``ratios`` ask for removed (by magnitude)."""
    ratios = {k: v for k, v in ratios.items() if v > 0}
    if not ratios:
        return model
    return StructuredPruner(ratio=0.0, layer_ratios=ratios).fit(model, input_shape=input_shape).model_


def scale_to_macs(
    model: nn.Module,
    ratios: Mapping[str, float],
    input_shape: tuple[int, ...],
    target_macs: int,
    *,
    n_iter: int = 14,
) -> tuple[dict[str, float], int]:
    """Scale per-layer ratios by one multiplier so the pruned model has about ``target_macs``.

    Bisection on the multiplier; each probe prunes a copy and counts its real MACs (which depend
    on channel counts only, so magnitude importance stands in for any criterion).

    Returns:
        ``(ratios, macs)``: the scaled ratios (each below 0.95, and keeping a channel) and the MACs they give, the
        closest at or below the target when it can be reached, else the smallest reachable.
    """
    ratios = {k: float(v) for k, v in ratios.items() if v > 0}
    if not ratios:
        raise ConfigError("scale_to_macs.ratios", "at least one layer with a ratio > 0", ratios)
    base = count_macs(model, input_shape)
    if target_macs >= base:
        return {k: 0.0 for k in ratios}, base

    # torch-pruning skips a layer whose ratio would leave no channel, which would make MACs
    # jump back up: cap every ratio so that at least one channel stays
    widths = {layer.name: layer.out_channels for layer in list_prunable_layers(model, input_shape)}
    caps = {k: min(MAX_RATIO, 1 - 1.5 / widths[k]) if k in widths else MAX_RATIO for k in ratios}

    def scaled(mult: float) -> dict[str, float]:
        return {k: max(0.0, min(caps[k], v * mult)) for k, v in ratios.items()}

    lo, hi = 0.0, MAX_RATIO / min(ratios.values())
    best = (scaled(hi), count_macs(pruned_model(model, scaled(hi), input_shape), input_shape))
    if best[1] > target_macs:
        return best
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        macs = count_macs(pruned_model(model, scaled(mid), input_shape), input_shape)
        if macs <= target_macs:
            hi, best = mid, (scaled(mid), macs)
        else:
            lo = mid
    return best


def pruned_macs(parent: nn.Module, ratios: Mapping[str, float], input_shape) -> int:
    return count_macs(pruned_model(parent, ratios, input_shape), input_shape)


def prune_ratios(policy: CompressionPolicy) -> dict[str, float]:
    """The per-layer ratios of ``policy``'s structured pruning step (empty without one)."""
    return {k: float(v) for k, v in policy.options("prune").get("layer_ratios", {}).items()}


def with_prune_ratios(policy: CompressionPolicy, ratios: Mapping[str, float]) -> CompressionPolicy:
    """``policy`` with its pruning step's per-layer ratios replaced (a step added when missing)."""
    options = {"ratio": 0.0, "importance": "l1", **policy.options("prune")}
    return policy.with_step("prune", {**options, "layer_ratios": {k: v for k, v in ratios.items() if v > 0}})


def mac_limits(budget: Sequence) -> list[float]:
    """The absolute upper limits on MACs among ``budget``."""
    return [b.limit for b in budget if b.metric == "macs" and b.op in ("<=", "<") and not b.relative]


def fit_to_macs(parent: nn.Module, policy: CompressionPolicy, input_shape: tuple[int, ...],
                budget: Sequence, *, use_full_budget: bool = False, keep: float = 0.0,
                rounding: int = 1) -> CompressionPolicy:
    """Meet a MAC budget by construction: scale the policy's per-layer ratios (keeping their
    shape) until the pruned parent fits, where pruning alone can reach it. With
    ``use_full_budget`` (when MACs are a constraint but not an objective), ratios that prune
    more than the budget needs are scaled back too, so the sampled ratios set the shape and the
    budget sets the level. ``keep`` (0 = off) adds a target of that share of the parent's MACs,
    met the same way (both ways), so a search samples the level as a gene of its own.
    ``rounding`` > 1: the scaled layers keep a multiple of it (:func:`round_to_macs`; left
    unrounded where the rounded counts cannot meet the budget). Where nothing needs scaling,
    ``policy`` itself is returned."""
    limits = mac_limits(budget)
    if keep > 0:
        limits.append(keep * count_macs(parent, input_shape))
        use_full_budget = True
    if not limits:
        return policy
    target = int(min(limits))
    ratios = prune_ratios(policy)
    if not any(r > 0 for r in ratios.values()):
        if count_macs(parent, input_shape) <= target:
            return policy
        ratios = {lay.name: UNIFORM_SHAPE for lay in list_prunable_layers(parent, input_shape)}
    elif pruned_macs(parent, ratios, input_shape) <= target and not use_full_budget:
        return policy
    scaled, macs = scale_to_macs(parent, ratios, input_shape, target)
    if macs <= target:
        rounded = round_to_macs(parent, scaled, input_shape, target, rounding) if rounding > 1 else None
        scaled = rounded if rounded is not None else fill_to_macs(parent, scaled, input_shape, target)
    return with_prune_ratios(policy, scaled)


def kept_channels(ratio: float, width: int) -> int:
    return width - removed(ratio, width)


def next_up(kept: int, width: int, rounding: int) -> int:
    """The next count a layer may keep above ``kept``: the next multiple of ``rounding`` (the
    full width past the last; every count for a layer no wider than ``rounding``)."""
    if rounding <= 1 or width <= rounding:
        return min(width, kept + 1)
    return min(width, (kept // rounding + 1) * rounding)


def round_to_macs(parent: nn.Module, ratios: Mapping[str, float], input_shape, target: int,
                  rounding: int) -> dict[str, float] | None:
    """``ratios`` with every pruned layer's kept channels rounded down to a multiple of
    ``rounding`` (at least one multiple; a layer no wider than ``rounding`` keeps its count),
    then channels given back a multiple at a time while the model stays within ``target`` MACs
    (:func:`fill_to_macs`). ``None`` where the rounded counts exceed ``target``."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    out = {}
    for name, r in ratios.items():
        w = widths.get(name)
        if w is None or r <= 0:
            continue
        kept = kept_channels(r, w)
        if w > rounding:
            kept = max(rounding, kept // rounding * rounding)
        out[name] = channel_ratio(w - kept, w)
    if pruned_macs(parent, out, input_shape) > target:
        return None
    return fill_to_macs(parent, out, input_shape, target, rounding=rounding)


def channel_ratio(n_removed: int, width: int) -> float:
    """The ratio that removes exactly ``n_removed`` of ``width`` channels (torch-pruning keeps
    ``int(width * (1 - ratio))``; the 0.1 keeps float error from costing a channel)."""
    return 0.0 if n_removed <= 0 else (n_removed - 0.1) / width


def removed(ratio: float, width: int) -> int:
    return width - int(width * (1 - ratio)) if ratio > 0 else 0


def fill_to_macs(parent: nn.Module, ratios: dict[str, float], input_shape, target: int, *,
                 max_steps: int = 64, rounding: int = 1) -> dict[str, float]:
    """Give channels back, one at a time (``rounding``: up to the next multiple of it), while the
    pruned model stays within ``target`` MACs: the scaled ratios move in coarse steps and
    usually leave part of the budget unused. The most pruned layer gets its channels back first."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    ratios = {k: v for k, v in ratios.items() if k in widths}
    for _ in range(max_steps):
        grown = False
        for name in sorted((k for k, v in ratios.items() if v > 0), key=lambda k: -ratios[k]):
            trial = dict(ratios)
            w = widths[name]
            trial[name] = channel_ratio(w - next_up(kept_channels(ratios[name], w), w, rounding), w)
            if pruned_macs(parent, trial, input_shape) <= target:
                ratios, grown = trial, True
                break
        if not grown:
            break
    return ratios


def allocate_by_sensitivity(parent: nn.Module, sens, input_shape, target: int, *, step: float = 0.05,
                            max_ratio: float = 0.9) -> dict[str, float]:
    """Per-layer ratios that reach ``target`` MACs where pruning hurts least: repeatedly prune
    a little more from the layer whose sensitivity curve (validation accuracy when pruned
    alone) shows the smallest drop per MAC saved (in the spirit of Li et al. 2017)."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    curves = {k: v for k, v in sens.curves.items() if k in widths}

    def drop(name: str, r: float) -> float:
        xs = [0.0] + [p[0] for p in curves[name]]
        ys = [0.0] + [max(0.0, sens.baseline - p[1]) for p in curves[name]]
        return float(np.interp(r, xs, ys))

    ratios = dict.fromkeys(curves, 0.0)
    macs = pruned_macs(parent, ratios, input_shape)
    while macs > target:
        best = None
        for name, r in ratios.items():
            k = removed(r, widths[name]) + max(1, round(step * widths[name]))
            new_r = channel_ratio(k, widths[name])
            if new_r > max_ratio or k >= widths[name]:
                continue
            trial = {**ratios, name: new_r}
            new_macs = pruned_macs(parent, trial, input_shape)
            if new_macs >= macs:
                continue  # coupled to another layer's group, or no change
            # the drop at the new ratio (not the step's increment: past a layer's collapse the
            # curve flattens and increments would look free)
            cost = (drop(name, new_r) + 1e-3) / (macs - new_macs)
            if best is None or cost < best[0]:
                best = (cost, trial, new_macs)
        if best is None:
            break
        _, ratios, macs = best
    return fill_to_macs(parent, ratios, input_shape, target) if macs <= target else ratios
