"""Where a MAC budget's cuts go: per-layer ratios scaled to a target, channels given back to
use the whole budget, and a sensitivity-guided allocation (AMC, He et al. 2018, searches exactly
this per-layer ratio space; Li et al. 2017 allocate by sensitivity).

MACs depend on channel counts only, so every probe prunes a copy by magnitude and counts its
real MACs: any criterion gives the same structure at the same ratios. Counts are kept per parent
model (by ratios, and by the pruned copy's parameter shapes): a search asks for the same ones
again and again, and counting a recurrent layer's MACs takes most of a second.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import numpy as np
import torch
from torch import nn

from slimnas.compress._prune import StructuredPruner, prunable_layers
from slimnas.compress._prune_layers import attention_heads, split_view
from slimnas.errors import ConfigError
from slimnas.measure import count_macs
from slimnas.models._io import ExampleInputs, example_for
from slimnas.spaces._policy import CompressionPolicy

MAX_RATIO = 0.95  # scale_to_macs never removes more than this share of a layer's channels
UNIFORM_SHAPE = 0.3  # ratio shape used when a policy prunes nothing but the MAC budget needs it


@dataclass(frozen=True)
class PrunableLayer:
    name: str
    kind: str
    out_channels: int
    macs: int


#: parent model -> {key: counted value}: MACs of its pruned copies, its prunable layers
_COUNTS: WeakKeyDictionary = WeakKeyDictionary()


def _structure(model: nn.Module) -> tuple:
    return tuple((n, tuple(p.shape)) for n, p in model.named_parameters())


def _counted(parent: nn.Module, key: tuple, count):
    """``count()`` once per ``key`` and structure of ``parent`` (its parameter shapes)."""
    cache = _COUNTS.setdefault(parent, {})
    key = (key, _structure(parent))
    if key not in cache:
        cache[key] = count()
    return cache[key]


def list_prunable_layers(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs) -> list[PrunableLayer]:
    """Layers whose output channels structured pruning can remove, in forward order, with their
    widths and MACs per sample (the output layer is left out: its width is the class count); for
    a model with several (keyword) inputs, of its :class:`~slimnas.models._io.ExampleInputs`."""
    key = input_shape.describe() if isinstance(input_shape, ExampleInputs) else tuple(input_shape)
    return list(_counted(model, ("layers", key), lambda: tuple(_prunable_layers(model, input_shape))))


def _prunable_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[PrunableLayer]:
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
            example_for(input_shape, 1, zeros=True, cut=True)(model.eval())
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
    base = pruned_macs(model, {}, input_shape)
    if target_macs >= base:
        return {k: 0.0 for k in ratios}, base

    # torch-pruning skips a layer whose ratio would leave no channel, which would make MACs
    # jump back up: cap every ratio so that at least one channel stays
    widths = {layer.name: layer.out_channels for layer in list_prunable_layers(model, input_shape)}
    caps = {k: min(MAX_RATIO, 1 - 1.5 / widths[k]) if k in widths else MAX_RATIO for k in ratios}

    def scaled(mult: float) -> dict[str, float]:
        return {k: max(0.0, min(caps[k], v * mult)) for k, v in ratios.items()}

    lo, hi = 0.0, MAX_RATIO / min(ratios.values())
    best = (scaled(hi), pruned_macs(model, scaled(hi), input_shape))
    if best[1] > target_macs:
        return best
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        macs = pruned_macs(model, scaled(mid), input_shape)
        if macs <= target_macs:
            hi, best = mid, (scaled(mid), macs)
        else:
            lo = mid
    return best


def pruned_macs(parent: nn.Module, ratios: Mapping[str, float], input_shape) -> int:
    """MACs per sample of ``parent`` pruned as ``ratios`` say (counted once per ratios, and once
    per pruned structure: see the module's note)."""
    shape = tuple(input_shape)
    by_ratios = ("macs", shape, tuple(sorted((k, round(float(v), 9)) for k, v in ratios.items() if v > 0)))

    def count() -> int:
        model = pruned_model(parent, ratios, shape)
        return _counted(parent, ("pruned", shape, _structure(model)), lambda: count_macs(model, shape))

    return _counted(parent, by_ratios, count)


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
    unrounded where the rounded counts cannot meet the budget). Where the policy's own layers
    cannot reach the budget, the layers it leaves alone join at its smallest ratio. Where
    nothing needs scaling, ``policy`` itself is returned."""
    limits = mac_limits(budget)
    if keep > 0:
        limits.append(keep * pruned_macs(parent, {}, input_shape))
        use_full_budget = True
    if not limits:
        return policy
    target = int(min(limits))
    ratios = prune_ratios(policy)
    if not any(r > 0 for r in ratios.values()):
        if pruned_macs(parent, {}, input_shape) <= target:
            return policy
        ratios = {lay.name: UNIFORM_SHAPE for lay in list_prunable_layers(parent, input_shape)}
    elif pruned_macs(parent, ratios, input_shape) <= target and not use_full_budget:
        return policy
    scaled, macs = scale_to_macs(parent, ratios, input_shape, target)
    if macs > target:  # the policy prunes too few layers to reach the budget: every layer, its shape kept
        least = min(r for r in ratios.values() if r > 0)
        wider = {lay.name: max(ratios.get(lay.name, 0.0), least) for lay in list_prunable_layers(parent, input_shape)}
        if wider.keys() - ratios.keys():
            scaled, macs = min((scaled, macs), scale_to_macs(parent, wider, input_shape, target), key=lambda t: t[1])
    if macs <= target:
        rounded = round_to_macs(parent, scaled, input_shape, target, rounding) if rounding > 1 else None
        scaled = rounded if rounded is not None else fill_to_macs(parent, scaled, input_shape, target)
    return with_prune_ratios(policy, scaled)


def uniform_at_macs(parent: nn.Module, input_shape, target: int, *, at_least: bool = False,
                    steps: int = 14) -> dict | None:
    """Uniform pruning at ``target`` MACs where attention heads go whole: the same share of
    every attention's heads, and one ratio ``q`` for every other prunable layer (MLP neurons,
    channels). One ratio for every layer jumps over most MAC levels (a 4-head attention moves in
    quarters), so for each whole head count k (of the most heads; each attention removes the
    nearest count to that share of its own) ``q`` is solved by bisection: the smallest that
    leaves at most ``target`` MACs (``at_least``: the largest that leaves at least ``target``).
    The most uniform of these is kept: ``q`` nearest to k's share of the heads. ``q`` falls as k
    rises while k's share rises, so the head counts are bisected too (a 12-head model solves
    ``q`` for about 4 of them, not 12). Returns
    ``{"ratios"`` (pruning's names), ``"q"``, ``"heads_removed"`` (per attention), ``"macs"}``,
    or ``None`` where ``parent`` has no attention or no head count reaches ``target``."""
    prunable = [lay.name for lay in list_prunable_layers(parent, input_shape)]
    attention = {n: h for n, h in attention_heads(parent).items() if n in prunable}
    if not attention:
        return None
    n_heads = max(attention.values())

    def ratios(k: int, q: float) -> dict[str, float]:
        # j of h heads: pruning's head ratio rounds ratio * heads up, so (j - 0.5) / h removes
        # exactly j (and a MAC budget's rescaling of it by up to half a head either way keeps j)
        removed = {n: round(k / n_heads * h) for n, h in attention.items()}
        out = {n: (j - 0.5) / attention[n] for n, j in removed.items() if j > 0}
        return {**out, **{n: q for n in prunable if n not in attention and q > 0}}

    def fits(k: int, q: float) -> bool:
        macs = pruned_macs(parent, ratios(k, q), input_shape)
        return macs >= target if at_least else macs <= target

    def solve(k: int) -> float:
        """``q`` at ``target`` with k heads (of the most) removed; +inf where even the most
        pruning leaves too many MACs, -inf where even none leaves too few (``at_least``)."""
        lo, hi = 0.0, MAX_RATIO
        if not fits(k, lo if at_least else hi):
            return -math.inf if at_least else math.inf
        if fits(k, hi if at_least else lo):
            return hi if at_least else lo
        for _ in range(steps):  # the q at target: the fitting end moves in
            mid = (lo + hi) / 2
            if fits(k, mid) == at_least:
                lo = mid
            else:
                hi = mid
        return lo if at_least else hi

    solved: dict[int, float] = {}

    def gap(k: int) -> float:  # q's distance above k's share of the heads: falls as k rises
        if k not in solved:
            solved[k] = solve(k)
        return solved[k] - k / n_heads

    lo, hi = 0, n_heads - 1  # the last head count whose q is at or above its share, and the next
    if gap(lo) < 0:
        hi = lo
    elif gap(hi) >= 0:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if gap(mid) >= 0 else (lo, mid)
    candidates = [k for k in sorted({lo, hi}) if math.isfinite(solved[k])]
    if not candidates:
        return None
    k = min(candidates, key=lambda k: abs(gap(k)))  # the more uniform of the two
    best = ratios(k, solved[k])
    return {"ratios": best, "q": round(solved[k], 4), "macs": int(pruned_macs(parent, best, input_shape)),
            "heads_removed": {n: round(k / n_heads * h) for n, h in attention.items()}}


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
                            max_ratio: float = 0.9,
                            progress: Callable[[int, dict], None] | None = None) -> dict[str, float]:
    """Per-layer ratios that reach ``target`` MACs where pruning hurts least: repeatedly prune
    a little more from the layer whose sensitivity curve (validation accuracy when pruned
    alone) shows the smallest drop per MAC saved (in the spirit of Li et al. 2017).

    Each layer's cost is counted on a pruned copy (MACs are exact), lazily: a layer's MACs saved
    only shrink as other layers are pruned (every MAC term is a product of widths), so a cost
    counted earlier is a lower bound, and only the layer at the head of the queue is counted
    again; it is taken when its fresh cost still leads. That picks what counting every layer
    at every step picks, with a few copies per step instead of one per layer (a ResNet-18 took
    1,515 pruned copies). ``progress(percent of the cut made, {"macs": ...})`` hears of each step."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    curves = {k: v for k, v in sens.curves.items() if k in widths}

    def drop(name: str, r: float) -> float:
        xs = [0.0] + [p[0] for p in curves[name]]
        ys = [0.0] + [max(0.0, sens.drop(p[1])) for p in curves[name]]
        return float(np.interp(r, xs, ys))

    ratios = dict.fromkeys(curves, 0.0)
    macs = base = pruned_macs(parent, ratios, input_shape)

    def candidate(name: str):
        """``(cost, ratios, macs)`` of pruning ``name`` one step further now, or ``None``."""
        k = removed(ratios[name], widths[name]) + max(1, round(step * widths[name]))
        new_r = channel_ratio(k, widths[name])
        if new_r > max_ratio or k >= widths[name]:
            return None
        trial = {**ratios, name: new_r}
        new_macs = pruned_macs(parent, trial, input_shape)
        if new_macs >= macs:
            return None  # coupled to another layer's group, or no change
        # the drop at the new ratio (not the step's increment: past a layer's collapse the
        # curve flattens and increments would look free)
        return (drop(name, new_r) + 1e-3) / (macs - new_macs), trial, new_macs

    order = {name: i for i, name in enumerate(ratios)}  # ties go to the earlier layer
    queue = []
    for name in ratios:
        c = candidate(name) if macs > target else None
        if c is not None:
            heapq.heappush(queue, (c[0], order[name], name))
    while macs > target and queue:
        _, _, name = heapq.heappop(queue)
        fresh = candidate(name)
        if fresh is None:
            continue
        if queue and (fresh[0], order[name]) > queue[0][:2]:
            heapq.heappush(queue, (fresh[0], order[name], name))  # no longer leads: back in line
            continue
        _, ratios, macs = fresh
        if progress is not None:
            progress(min(100, int(100 * (base - macs) / max(1, base - target))), {"macs": macs})
        nxt = candidate(name)
        if nxt is not None:
            heapq.heappush(queue, (nxt[0], order[name], name))
    return fill_to_macs(parent, ratios, input_shape, target) if macs <= target else ratios
