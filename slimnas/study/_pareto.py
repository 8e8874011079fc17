"""Pareto front of finished trials under a budget: pure data, no rendering."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from slimnas.measure import Budget
from slimnas.measure._metric import signed
from slimnas.strategies._early_stopping import nondominated_rank


def feasible(metrics: dict, budget: Sequence[Budget]) -> bool:
    return all(b.is_met(metrics) for b in budget)


def total_violation(metrics: dict, budget: Sequence[Budget]) -> float:
    """Sum of relative misses of every budget (0 when all are met)."""
    return sum(max(0.0, b.violation(metrics)) / max(abs(b.limit), 1e-12) for b in budget if b.key in metrics)


def is_skipped(trial: FrozenTrial) -> bool:
    """Whether a complete trial was skipped before training (over a budget known from the
    model alone): it holds no trained model, so it is never on a front nor among the closest."""
    return bool(trial.user_attrs.get("skipped")) or (trial.user_attrs.get("metrics") or {}).get("trained") is False


def _recorded(trial: FrozenTrial) -> dict:
    return trial.user_attrs["metrics"]


def pareto_front(
    trials: Sequence[FrozenTrial], objectives: Sequence[str], budget: Sequence[Budget], *, n_closest: int = 5,
    metrics: Callable[[FrozenTrial], dict] = _recorded,
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """``(front, closest)``: the non-dominated complete trials that meet the budget, ordered by the
    first objective; and, only when none meets it, the ``n_closest`` trials that miss it least.
    Trials skipped before training are neither. With one objective the front is the best trial (the earliest of equals). ``metrics`` reads a
    trial's figures (default: those the trial recorded)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and "metrics" in t.user_attrs and not is_skipped(t)]
    ok = [t for t in done if feasible(metrics(t), budget)]
    if not ok:
        closest = sorted(done, key=lambda t: (total_violation(metrics(t), budget), signed(metrics(t), objectives)))
        return [], closest[:n_closest]
    points = np.array([signed(metrics(t), objectives) for t in ok])
    rank = nondominated_rank(points)
    front = [t for t, r in zip(ok, rank, strict=True) if r == 0]
    # one member per distinct objective vector (ties keep the earliest trial)
    seen, unique = set(), []
    for t in sorted(front, key=lambda t: (signed(metrics(t), objectives), t.number)):
        key = tuple(signed(metrics(t), objectives))
        if key not in seen:
            seen.add(key)
            unique.append(t)
    return unique, []


def hypervolume_2d(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (both coordinates minimised) up to ``reference``."""
    pts = sorted(p for p in points if p[0] < reference[0] and p[1] < reference[1])
    front: list[tuple[float, float]] = []
    for x, y in pts:  # keep the staircase: y strictly falls as x grows
        if not front or y < front[-1][1]:
            front.append((x, y))
    area = 0.0
    for i, (x, y) in enumerate(front):
        next_x = front[i + 1][0] if i + 1 < len(front) else reference[0]
        area += (next_x - x) * (reference[1] - y)
    return area
