"""Hardware-aware pruning: per-layer channel counts chosen by latency on the target, not by MACs.

MACs are a poor stand-in for latency: a runtime runs some channel counts much faster than their
neighbours (multiples of its vector width), per-operator overheads do not shrink with channels,
and layers differ in how much of the latency they hold. HALP (Shen et al. 2022, "Structural
Pruning via Latency-Saliency Knapsack") prunes to a latency budget with a lookup table of the
target's latency instead. Here, greedily: each step removes the group of channels (down to the
next allowed count) that saves the most predicted latency per unit of importance lost, until the
predicted latency meets the target; then channels are given back where the budget still allows.

A target pruning cannot reach (per-operator overheads that do not shrink with channels: the
MNIST-1D paper CNN at batch 1 never gets under 74% of its latency here) is not chased to the
floor, where the last steps cost most of the importance for a few microseconds: the allocation
stops at the knee of its path and reports the floor (:func:`knee_index`). Where the cost is the
sensitivity analysis's accuracy drop, the knee is where 1% more of the latency would cost more
than 1% of the accuracy (shares of the original model's); otherwise, the path's Kneedle knee.

Allowed counts are multiples of a rounding (1, 2, 4, 8, 16): the rounding is chosen per model
by trying each on the target's table and keeping it only where it reaches the target with less
importance removed (where rounding measurably helps on this runtime).

Latency comes from a :class:`slimnas.measure.LatencyPredictor`: a device profile's table, or a
table measured on this machine on demand (:func:`slimnas.measure.onthefly_predictor`). Where the
target is the machine the allocation runs on, the chosen channel counts are also timed as a file
(:func:`measured_share`): a table predicts each operator alone, and a pruned model can miss its
predicted latency by a fifth or more (layouts, caches, fused operators). Where the measured share of
the original's latency misses the target share (over it, or well under it), the table's error there
is taken as a factor, the predicted target is rescaled by it and the channels allocated again (a
few times at most; once over and under, the next target is interpolated between them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from slimnas.compress._allocate import channel_ratio, list_prunable_layers, pruned_model
from slimnas.compress._sensitivity import SensitivityResult
from slimnas.config import DEFAULT_RUNTIME
from slimnas.measure import LatencyPredictor
from slimnas.measure._ops import model_ops
from slimnas.spaces._policy import CompressionPolicy

ROUNDINGS = (1, 2, 4, 8, 16)
#: a rounding > 1 is kept only where it removes this share less importance than no rounding (a
#: latency budget), or runs this share faster per MAC (a MAC budget)
ROUNDING_MARGIN = 0.02
#: under a MAC budget, a rounded allocation may use this much less of it than the unrounded one
MAC_SLACK = 0.1
#: a measured latency share this much over the target share still meets it (timing noise)
MEASURE_TOLERANCE = 0.03
#: a measured share this much under the target share leaves latency unspent: channels are given back
UNDERSHOOT = 0.1


def knee_index(latency: Sequence[float], cost: Sequence[float], *,
               scale: tuple[float, float] | None = None) -> int:
    """The knee of a pruning path (step ``i``: predicted latency, cost removed so far; step 0 the
    original, the last the fastest reached).

    Without ``scale``: the step furthest above the straight line from the first to the last, with
    latency saved and cost as shares of the whole path's (Kneedle, Satopää et al. 2011): past
    it, each share of the path's latency costs more than a share of its importance.

    ``scale=(base_latency, cost_scale)``: the cost is in the units of an accuracy (the sensitivity
    analysis's validation accuracy drop) and both are shares of the original model's: the step
    saving the most latency net of the accuracy lost, ``(base - latency) / base - (cost -
    cost[0]) / cost_scale``; past it, each 1% of latency costs more than 1% of accuracy. A
    path's own extent is no scale where its last steps save a few microseconds for most of the
    accuracy (an overhead-bound model): measured against it, the first costly cut looks cheap.

    0 where the path saves nothing."""
    saved, spent = latency[0] - latency[-1], cost[-1] - cost[0]
    if saved <= 0:
        return 0
    if spent <= 0:
        return len(latency) - 1
    if scale is not None:
        base, cost_scale = scale
        gain = [(base - lat) / base - (c - cost[0]) / cost_scale for lat, c in zip(latency, cost, strict=True)]
    else:
        gain = [(latency[0] - lat) / saved - (c - cost[0]) / spent for lat, c in zip(latency, cost, strict=True)]
    return int(np.argmax(gain))


@dataclass
class LatencyAllocation:
    """Per-layer channel counts that meet a latency target, and how they were found.

    Attributes:
        ratios: layer -> pruning ratio removing exactly the channels ``widths`` drops.
        widths: layer -> channels kept; ``original``: layer -> channels before.
        predicted_ms: predicted latency of the pruned model; ``base_ms``: of the original.
        target_ms: the latency budget; ``met``: whether ``predicted_ms <= target_ms``.
        floor_ms: where the target is out of reach by pruning (predicted), the fastest predicted
            latency pruning reaches; the allocation then stops at its path's knee (:func:`knee_index`).
            ``None`` where the target is reachable.
        rounding: channel counts are multiples of it (except layers left whole).
        cost: importance removed (per layer, the share of its channel importance; summed).
        tried: per rounding tried, its predicted latency, cost and whether it met the target.
        measured_share: the chosen counts' measured latency as a share of the original's
            (``None`` when not measured); ``checks``: each measured allocation, with the
            predicted target it was allocated for.
    """

    ratios: dict[str, float]
    widths: dict[str, int]
    original: dict[str, int]
    predicted_ms: float
    base_ms: float
    target_ms: float
    rounding: int = 1
    cost: float = 0.0
    tried: list[dict] = field(default_factory=list)
    measured_share: float | None = None
    checks: list[dict] = field(default_factory=list)
    floor_ms: float | None = None

    @property
    def met(self) -> bool:
        """The target is met: measured, where the allocation was timed; else predicted."""
        if self.measured_share is not None:
            return self.measured_share <= (self.target_ms / self.base_ms) * (1 + MEASURE_TOLERANCE)
        return self.predicted_ms <= self.target_ms

    def to_dict(self) -> dict:
        return {"widths": self.widths, "original": self.original, "ratios": {k: round(v, 6) for k, v in self.ratios.items()},
                "predicted_ms": round(self.predicted_ms, 6), "base_ms": round(self.base_ms, 6),
                "target_ms": round(self.target_ms, 6), "met": self.met, "rounding": self.rounding,
                "cost": round(self.cost, 5), "tried": self.tried,
                "floor_ms": None if self.floor_ms is None else round(self.floor_ms, 6),
                "measured_share": None if self.measured_share is None else round(self.measured_share, 4),
                "checks": self.checks}


def channel_importance(model: nn.Module, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Each prunable layer's output channels' L1 weight norms, as shares of the layer's total
    (sorted ascending: the order structured L1 pruning removes them)."""
    modules = dict(model.named_modules())
    out = {}
    for n in names:
        m = modules[n]
        if isinstance(m, nn.RNNBase):
            w = m.weight_ih_l0.detach().abs().reshape(-1, m.hidden_size, m.weight_ih_l0.shape[1]).sum(dim=(0, 2))
        else:
            w = m.weight.detach().abs().reshape(m.weight.shape[0], -1).sum(dim=1)
        v = w.double().numpy()
        out[n] = np.sort(v / max(v.sum(), 1e-12))
    return out


def widths_to_ratios(widths: Mapping[str, int], original: Mapping[str, int]) -> dict[str, float]:
    """Per-layer ratios that keep exactly ``widths`` channels."""
    return {n: channel_ratio(original[n] - k, original[n]) for n, k in widths.items() if k < original[n]}


def allowed_counts(width: int, rounding: int, min_keep: int) -> list[int]:
    """Channel counts a layer may keep, descending: the full width, then multiples of
    ``rounding`` down to ``min_keep``."""
    counts = {width}
    counts.update(c for c in range(rounding, width, rounding) if c >= min_keep)
    if rounding == 1:
        counts.update(range(min_keep, width))
    return sorted(counts, reverse=True)


class _Evaluator:
    """Predicted latency of ``model`` pruned to given widths, cached."""

    def __init__(self, model, input_shape, predictor: LatencyPredictor, batch: int, precision: str) -> None:
        self.model, self.shape, self.predictor = model, input_shape, predictor
        self.batch, self.precision = batch, precision
        self.original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, input_shape)}
        self.cache: dict[tuple, float] = {}

    def __call__(self, widths: Mapping[str, int]) -> float:
        key = tuple(sorted(widths.items()))
        if key not in self.cache:
            ratios = widths_to_ratios(widths, self.original)
            pruned = pruned_model(self.model, ratios, self.shape) if ratios else self.model
            ops = model_ops(pruned, self.shape)
            self.cache[key] = self.predictor.predict_ops(ops, batch=self.batch, precision=self.precision).ms
        return self.cache[key]


def _allocate(ev: _Evaluator, importance: dict[str, np.ndarray], target_ms: float, rounding: int,
              max_ratio: float, cost_fn: Callable[[str, int, int], float] | None,
              start: Mapping[str, int] | None = None) -> dict:
    """Greedy allocation from the original widths (or from ``start``: an earlier allocation at
    this rounding that channels are given back to): ``{rounding, widths, predicted_ms, cost, met,
    floor_ms}``."""
    original = ev.original
    counts = {n: allowed_counts(w, rounding, max(1, int(np.ceil(w * (1 - max_ratio))))) for n, w in original.items()}
    widths = dict(start) if start is not None else dict(original)

    def cost(name: str, kept: int) -> float:
        if cost_fn is not None:
            return cost_fn(name, original[name], kept)
        return float(importance[name][: original[name] - kept].sum())

    latency = ev(widths)
    path = [(latency, sum(cost(n, widths[n]) for n in original), dict(widths))]
    while latency > target_ms:
        best = _step_down(ev, counts, widths, latency, cost)
        if best is None:
            break
        _, name, k = best
        widths[name] = k
        latency = ev(widths)
        path.append((latency, sum(cost(n, widths[n]) for n in original), dict(widths)))
    floor = None
    if latency > target_ms:  # out of reach: back up the path to its knee, and give back from there
        floor = latency
        accuracy = getattr(cost_fn, "accuracy_scale", None)  # a cost in accuracy: shares of the original's
        i = knee_index([p[0] for p in path], [p[1] for p in path],
                       scale=None if accuracy is None else (ev(dict(original)), accuracy))
        latency, target_ms, widths = path[i][0], path[i][0], dict(path[i][2])
    latency = _give_back(ev, counts, widths, latency, target_ms, cost)
    return {"rounding": rounding, "widths": widths, "predicted_ms": latency,
            "cost": sum(cost(n, widths[n]) for n in original), "met": floor is None, "floor_ms": floor}


def _step_down(ev: _Evaluator, counts: Mapping[str, Sequence[int]], widths: Mapping[str, int], latency: float,
               cost: Callable[[str, int], float]) -> tuple[float, str, int] | None:
    """The next channel count to cut to, ``(latency saved per cost, layer, count)``: the best
    step to a layer's next lower count, or (none saving) to the first lower count that does;
    ``None`` when no cut saves latency."""
    best = None
    for name in ev.original:
        lower = [c for c in counts[name] if c < widths[name]]
        if not lower:
            continue
        k = lower[0]
        saved = latency - ev({**widths, name: k})
        if saved <= 0:
            continue  # slower or no faster on this runtime (a worse channel count, or a coupled layer)
        lost = cost(name, k) - cost(name, widths[name]) + 1e-9
        score = saved / lost
        if best is None or score > best[0]:
            best = (score, name, k)
    if best is None:
        # no single step saves latency (an unfriendly count next, or the table's timing noise
        # between neighbouring counts): per layer, the first lower count that does save, the
        # best of those by latency saved per cost
        for name in ev.original:
            for k in [c for c in counts[name] if c < widths[name]][1:]:
                saved = latency - ev({**widths, name: k})
                if saved > 0:
                    lost = cost(name, k) - cost(name, widths[name]) + 1e-9
                    if best is None or saved / lost > best[0]:
                        best = (saved / lost, name, k)
                    break
    return best


def _give_back(ev: _Evaluator, counts: Mapping[str, Sequence[int]], widths: dict[str, int], latency: float,
               target_ms: float, cost: Callable[[str, int], float]) -> float:
    """Give channels back (in ``widths``) where the budget still allows, the most importance
    regained per ms first; the predicted latency after."""
    while latency <= target_ms:
        best = None
        for name in ev.original:
            higher = [c for c in counts[name] if c > widths[name]]
            if not higher:
                continue
            k = higher[-1]
            lat = ev({**widths, name: k})
            if lat > target_ms:
                continue
            gained = cost(name, widths[name]) - cost(name, k)
            score = gained / max(lat - latency, 1e-9)
            if best is None or score > best[0]:
                best = (score, name, k, lat)
        if best is None:
            break
        _, name, k, latency = best
        widths[name] = k
    return latency


def _choose_rounding(ev: _Evaluator, importance: dict[str, np.ndarray], target_ms: float, roundings: Sequence[int],
                     max_ratio: float, cost_fn) -> tuple[dict, list[dict]]:
    """The allocation for ``target_ms`` with the rounding that helps most, and every rounding's."""
    widest = max(ev.original.values())
    results = []
    for r in roundings:
        if r > 1 and r > widest // 2:
            continue
        results.append(_allocate(ev, importance, target_ms, r, max_ratio, cost_fn))
    # out of reach with every rounding: the one that gets fastest (at its knee)
    met = [x for x in results if x["met"]] or sorted(results, key=lambda x: (x["floor_ms"], x["cost"]))[:1]
    plain = next((x for x in met if x["rounding"] == 1), None)
    chosen = min(met, key=lambda x: (x["cost"], x["rounding"]))
    if plain is not None and chosen is not plain and chosen["cost"] > plain["cost"] * (1 - ROUNDING_MARGIN):
        chosen = plain  # rounding does not measurably help here
    return chosen, results


def _measured(allocate: Callable[[float, dict | None], dict], target_ms: float, want: float,
              measure: Callable[[Mapping[str, int]], float], max_checks: int,
              prefer: Callable[[dict], float]) -> tuple[dict, float, list[dict]]:
    """Time allocations (``allocate(predicted target, start) -> {widths, predicted_ms, ...}``)
    until one's measured share of the original's latency lands in ``[want * (1 - UNDERSHOOT),
    want * (1 + MEASURE_TOLERANCE)]``: a miss scales the next predicted target by ``want /
    measured``; once one allocation fell on each side, the next target is interpolated between
    them (the table's error changes with the channel counts). After an allocation measured under
    the target, the next one starts from it (``start``) and only gives channels back: a fresh
    allocation for a looser target could move the cut to another layer on a small difference of
    cost (the paper CNN at batch 64 went from (8, 12, 18) channels to (4, 21, 18), 25 points of
    test accuracy under uniform pruning at the same latency after fine-tuning). Returns the kept
    allocation (the ``prefer``-least among those measured within the target; else among those
    within the timing tolerance of the fastest measured), its measured share and every
    allocation timed."""
    seen: dict[tuple, tuple[float, dict]] = {}
    checks, goal, over, under, start = [], target_ms, None, None, None
    for _ in range(max(1, max_checks)):
        chosen = allocate(goal, start)
        key = tuple(sorted(chosen["widths"].items()))
        if key in seen:
            break  # the table gives the same channel counts for this target: nothing new to time
        got = float(measure(chosen["widths"]))
        seen[key] = (got, chosen)
        checks.append({"target_predicted_ms": round(goal, 6), "predicted_ms": round(chosen["predicted_ms"], 6),
                       "measured_share": round(got, 4), "widths": dict(chosen["widths"]),
                       **({"rounding": chosen["rounding"]} if "rounding" in chosen else {})})
        point = (chosen["predicted_ms"], got)
        if got > want * (1 + MEASURE_TOLERANCE):
            over = point
        elif got < want * (1 - UNDERSHOOT):
            under, start = point, chosen
        else:
            break
        if over is not None and under is not None and over[1] > under[1]:
            (p0, s0), (p1, s1) = under, over
            goal = p0 + (want - s0) * (p1 - p0) / (s1 - s0)
        else:  # the table is off by (measured / predicted) around here: aim the prediction by it
            goal = chosen["predicted_ms"] * want / got
    ok = [v for v in seen.values() if v[0] <= want * (1 + MEASURE_TOLERANCE)]
    if not ok:
        fastest = min(v[0] for v in seen.values())
        ok = [v for v in seen.values() if v[0] <= fastest * (1 + MEASURE_TOLERANCE)]
    share, kept = min(ok, key=lambda v: prefer(v[1]))
    return kept, share, checks


def allocate_by_latency(model: nn.Module, input_shape: tuple[int, ...], predictor: LatencyPredictor, target_ms: float,
                        *, batch: int = 1, precision: str = "fp32", roundings: Sequence[int] = ROUNDINGS,
                        max_ratio: float = 0.9, cost_fn: Callable[[str, int, int], float] | None = None,
                        measure: Callable[[Mapping[str, int]], float] | None = None, max_checks: int = 3,
                        ) -> LatencyAllocation:
    """Channel counts per prunable layer that meet ``target_ms`` (predicted, at ``batch`` and
    ``precision``) losing the least importance, with the rounding that helps most. Where no
    allocation reaches it, the knee of the pruning path (:func:`knee_index`: with a cost in
    accuracy, such as :func:`sensitivity_cost`'s, where 1% more of the latency would cost more
    than 1% of the accuracy) with the rounding that gets fastest, and ``floor_ms`` says how fast
    pruning gets.

    Args:
        predictor: the target's latency predictor (a profile's, or measured here on demand).
        roundings: the channel multiples to try; one of them (1: none) is kept.
        cost_fn: ``(layer, width, kept) -> cost`` of keeping ``kept`` of ``width`` channels
            (default: the share of the layer's L1 importance removed; ``compress --auto`` passes
            the sensitivity analysis's accuracy drop).
        measure: ``widths -> share``: the latency of the model pruned to ``widths`` measured on
            the target, as a share of the original's (:func:`measured_share` on this machine).
            Where it misses ``target_ms / predicted original`` (over it, or more than
            :data:`UNDERSHOOT` under), the predicted target is scaled by the miss and the channels
            allocated again, up to ``max_checks`` allocations in all; the least costly one measured
            within the target is kept (else the least costly within timing noise of the fastest).

    Example:
        >>> from slimnas.measure import onthefly_predictor  # doctest: +SKIP
        >>> net = mnist1d_paper_cnn()  # doctest: +SKIP
        >>> pred = onthefly_predictor([(net, (1, 40))], batches=(64,))  # doctest: +SKIP
        >>> alloc = allocate_by_latency(net, (1, 40), pred, 0.5 * pred.predict(net, (1, 40), batch=64).ms, batch=64)  # doctest: +SKIP
    """
    model = model.eval()
    ev = _Evaluator(model, input_shape, predictor, batch, precision)
    importance = channel_importance(model, list(ev.original))
    base = ev(dict(ev.original))
    chosen, results = _choose_rounding(ev, importance, target_ms, roundings, max_ratio, cost_fn)
    tried = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in x.items() if k != "widths"} for x in results]
    share, checks = None, []

    def allocate(goal: float, start: dict | None) -> dict:
        if start is None:
            return _choose_rounding(ev, importance, goal, roundings, max_ratio, cost_fn)[0]
        return _allocate(ev, importance, goal, start["rounding"], max_ratio, cost_fn, start=start["widths"])

    if measure is not None:
        chosen, share, checks = _measured(allocate, target_ms, target_ms / base, measure, max_checks,
                                          prefer=lambda c: c["cost"])
    return LatencyAllocation(ratios=widths_to_ratios(chosen["widths"], ev.original), widths=chosen["widths"],
                             original=dict(ev.original), predicted_ms=chosen["predicted_ms"], base_ms=base,
                             target_ms=target_ms, rounding=chosen["rounding"], cost=chosen["cost"], tried=tried,
                             measured_share=share, checks=checks, floor_ms=chosen["floor_ms"])


def measured_share(model: nn.Module, input_shape: tuple[int, ...], *, batch: int = 1, threads: int = 1,
                   rounds: int = 3, repeats: int = 50, runtime: str = DEFAULT_RUNTIME
                   ) -> Callable[[Mapping[str, int]], float]:
    """``widths -> share``: ``model`` pruned to ``widths`` timed on this machine against ``model``
    itself, their calls alternating (load hits both alike), as a share of its latency: the
    median over ``rounds`` of each round's share (the two models' fastest rounds can fall in
    different spells of the machine: their ratio read the paper CNN pruned to (14, 18, 14)
    channels at 0.46 of the original where each round said 0.62); the ``measure`` of
    :func:`allocate_by_latency` where this machine is the target."""
    from slimnas.measure._latency import InterleavedTimer

    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, input_shape)}

    def share(widths: Mapping[str, int]) -> float:
        ratios = widths_to_ratios(widths, original)
        pruned = pruned_model(model, ratios, input_shape) if ratios else model
        with InterleavedTimer({"original": model, "pruned": pruned}, input_shape, batches=(batch,), repeats=repeats,
                              warmup=max(5, repeats // 5), runtime=runtime, threads=threads) as timer:
            for _ in range(rounds):
                timer.round()
            per = timer.samples
        return float(np.median([p / o for p, o in zip(per["pruned"][batch], per["original"][batch], strict=True)]))

    return share


def fit_to_latency(parent: nn.Module, policy: CompressionPolicy, input_shape: tuple[int, ...],
                   predictor: LatencyPredictor, target_ms: float, *, batch: int = 1, precision: str = "fp32",
                   rounding: int = 1, n_iter: int = 12, measure: Callable[[Mapping[str, int]], float] | None = None,
                   max_checks: int = 3) -> tuple[CompressionPolicy, float]:
    """Meet a latency budget by construction (as :func:`fit_to_macs` meets a MAC budget): scale
    the policy's per-layer ratios by one multiplier, found by bisection on the predicted latency,
    with channel counts rounded down to multiples of ``rounding``. Returns the policy and its
    predicted latency. Where even the most pruned multiple misses the target, the fit is to the
    knee of the multiplier's path (:func:`knee_index` over a grid of multipliers) instead of
    that floor.

    ``measure`` (``widths -> share``, as for :func:`allocate_by_latency`): the result is timed
    and, where it misses ``target_ms`` / the original's prediction, fitted again to a predicted
    target scaled by the miss (the least pruned one measured within the target is kept)."""
    from slimnas.compress._allocate import prune_ratios, with_prune_ratios

    ev = _Evaluator(parent.eval(), input_shape, predictor, batch, precision)
    original = ev.original
    ratios = {k: v for k, v in prune_ratios(policy).items() if k in original and v > 0}
    if not ratios:
        ratios = dict.fromkeys(original, 0.3)

    def widths_at(mult: float) -> dict[str, int]:
        out = {}
        for n, w in original.items():
            r = min(0.9, ratios.get(n, 0.0) * mult)
            kept = max(1, int(round(w * (1 - r))))
            if kept < w and rounding > 1:
                kept = max(rounding, kept // rounding * rounding) if w > rounding else kept
            out[n] = min(w, kept)
        return out

    # ``start`` (the fit timed under the target) is not needed: a smaller multiplier only gives channels back
    def fit(goal: float, start: dict | None = None) -> dict:
        base, lo, hi = ev(dict(original)), 0.0, 0.9 / min(ratios.values())
        best = (widths_at(hi), ev(widths_at(hi)))
        if best[1] > goal:  # out of reach: fit to the knee of the multiplier's path
            mults = np.linspace(0.0, hi, 13)
            lats = [ev(widths_at(m)) for m in mults]
            cost = [sum(1 - w / original[n] for n, w in widths_at(m).items()) for m in mults]
            goal = lats[knee_index(lats, cost)]
        if base <= goal:
            return {"widths": dict(original), "predicted_ms": base}
        if best[1] <= goal:
            for _ in range(n_iter):
                mid = (lo + hi) / 2
                w = widths_at(mid)
                lat = ev(w)
                if lat <= goal:
                    hi, best = mid, (w, lat)
                else:
                    lo = mid
        return {"widths": best[0], "predicted_ms": best[1]}

    out = fit(target_ms)
    if out["widths"] == original and measure is None:
        return policy, out["predicted_ms"]  # already within: left as it is
    if measure is not None:
        out, _, _ = _measured(fit, target_ms, target_ms / ev(dict(original)), measure, max_checks,
                              prefer=lambda c: -c["predicted_ms"])
        if out["widths"] == original:
            return policy, out["predicted_ms"]
    return with_prune_ratios(policy, widths_to_ratios(out["widths"], original)), out["predicted_ms"]


@dataclass
class MacRounding:
    """The channel rounding for a MAC budget: the rounding whose allocation at the budget is
    fastest on the target, kept only where it measurably is (a runtime's kernels can run a
    multiple of their vector width faster than a smaller count: fewer MACs are not always less
    time).

    Attributes:
        rounding: the multiple kept (1: none).
        tried: per rounding, its channel counts' predicted latency and MACs.
        measured: where timed on this machine, the shares of the original's latency of the
            unrounded and the rounded allocation.
        reason: why this rounding, in words.
    """

    rounding: int = 1
    tried: list[dict] = field(default_factory=list)
    measured: dict | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"rounding": self.rounding, "tried": self.tried, "measured": self.measured, "reason": self.reason}


def choose_mac_rounding(model: nn.Module, input_shape: tuple[int, ...], predictor: LatencyPredictor,
                        ratios: Mapping[str, float], target_macs: int, *, batch: int = 1, precision: str = "fp32",
                        roundings: Sequence[int] = ROUNDINGS,
                        measure: Callable[[Mapping[str, int]], float] | None = None) -> MacRounding:
    """The rounding that makes ``ratios`` (an allocation at ``target_macs``) fastest on the
    target within the same MAC budget: each rounding's allocation is the ratios' counts rounded
    down and channels given back a multiple at a time up to the budget
    (:func:`~slimnas.compress.round_to_macs`). A rounding is kept where its allocation is
    predicted faster than the unrounded one, at least :data:`ROUNDING_MARGIN` faster per MAC (the
    runtime rewards the counts: being smaller is not enough) and within :data:`MAC_SLACK` of its
    MACs; of those, the fastest per MAC. With ``measure`` (``widths -> share``,
    :func:`measured_share`) it must also time faster per MAC than the unrounded allocation, by
    more than :data:`MEASURE_TOLERANCE`: a rounding that gives up 9% of the MACs and times 5%
    faster bought its speed with the MACs, not with the counts (timing noise on this machine once
    passed multiples of 8 at 0.91x the MACs for a 23k-parameter detector on that rule, and its
    policy lost 3.7 points of mAP@0.5 where the unrounded one lost 1.4)."""
    from slimnas.compress._allocate import fill_to_macs, kept_channels, pruned_macs, round_to_macs

    model = model.eval()
    ev = _Evaluator(model, input_shape, predictor, batch, precision)
    widest = max(ev.original.values())
    plain = fill_to_macs(model, dict(ratios), input_shape, target_macs)
    options = {1: plain}
    for r in roundings:
        if 1 < r <= widest // 2:
            rounded = round_to_macs(model, ratios, input_shape, target_macs, r)
            if rounded is not None:
                options[r] = rounded

    def widths(rs: Mapping[str, float]) -> dict[str, int]:
        return {n: kept_channels(rs.get(n, 0.0), w) for n, w in ev.original.items()}

    tried = [{"rounding": r, "widths": widths(rs), "predicted_ms": round(ev(widths(rs)), 6),
              "macs": pruned_macs(model, rs, input_shape)} for r, rs in options.items()]
    base, base_macs = tried[0]["predicted_ms"], max(tried[0]["macs"], 1)
    for t in tried:  # latency per MAC against the unrounded allocation's: < 1 where the runtime rewards the counts
        t["latency_per_mac"] = round((t["predicted_ms"] / base) / (t["macs"] / base_macs), 4)
    helps = [t for t in tried[1:] if t["macs"] >= (1 - MAC_SLACK) * base_macs and t["predicted_ms"] < base
             and t["latency_per_mac"] <= 1 - ROUNDING_MARGIN]
    if not helps:
        return MacRounding(1, tried, None, "no rounding is predicted faster per MAC by "
                           f"{ROUNDING_MARGIN:.0%} within {MAC_SLACK:.0%} of the unrounded MACs")
    best = min(helps, key=lambda t: (t["latency_per_mac"], t["rounding"]))
    why = (f"multiples of {best['rounding']} predicted at {best['predicted_ms'] / base:.2f}x the latency of "
           f"unrounded counts for {best['macs'] / base_macs:.2f}x their MACs")
    if measure is None:
        return MacRounding(best["rounding"], tried, None, why)
    timed = {"unrounded": round(float(measure(tried[0]["widths"])), 4),
             "rounded": round(float(measure(best["widths"])), 4)}
    share, macs = timed["rounded"] / timed["unrounded"], best["macs"] / base_macs
    if share < macs * (1 - MEASURE_TOLERANCE):
        return MacRounding(best["rounding"], tried, timed, why + f", timed {share:.2f}x here")
    return MacRounding(1, tried, timed, why + f", but timed {share:.2f}x here for {macs:.2f}x the MACs: not kept")


def sensitivity_cost(sens: SensitivityResult | None) -> Callable[[str, int, int], float] | None:
    """A ``cost_fn`` for :func:`allocate_by_latency`: ``(layer, width, kept) -> validation accuracy
    drop`` read off the sensitivity curves (interpolated in the pruning ratio; a small ratio term
    breaks ties between layers the curves do not tell apart), so the latency saved is weighed
    against accuracy, not against each layer's share of its own importance. ``None`` without
    curves."""
    if sens is None or not any(sens.curves.values()):
        return None

    def cost(name: str, width: int, kept: int) -> float:
        r = 1 - kept / width
        curve = sens.curves.get(name) or []
        xs = [0.0] + [p[0] for p in curve]
        ys = [0.0] + [max(0.0, sens.drop(p[1])) for p in curve]
        return float(np.interp(r, xs, ys)) + 1e-3 * r

    # the knee weighs it as a share of the original's accuracy (a relative drop already is one; R² may be <= 0)
    cost.accuracy_scale = 1.0 if sens.quality.relative or sens.baseline <= 0 else sens.baseline
    return cost


def latency_policy(allocation: LatencyAllocation, *, importance: str = "l1", distill: bool = False) -> CompressionPolicy:
    """A policy pruning to ``allocation``'s channel counts."""
    return CompressionPolicy.of(prune={"ratio": 0.0, "importance": importance, "layer_ratios": allocation.ratios},
                                distill=distill)
