"""Search progress, trial by trial in completion order: the best first objective so far and
the hypervolume of the first two objectives so far, among the models that meet the budget;
and how long a search has to go.

The hypervolume is the area the feasible models dominate after each objective is scaled to
"0 is ideal, 1 is the reference": a cost ``v`` becomes ``v / limit`` where the budget caps it
(else ``v / the largest value any trial had``), an accuracy-like fraction becomes ``1 - v``
(another maximised metric ``1 - v / the largest value``). That is the convention of
``benchmarks/joint_vs_sequential.py`` (``(1 - accuracy, macs / mac_limit)``, reference
``(1, 1)``), so the figures compare. The scales are fixed from all trials before the first
point, so the curve never falls.

These live with the studies (``slimnas.report`` re-exports them) because a study's listeners
use them while it runs (``TensorBoardListener``), not only reports after it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from slimnas.measure import Budget, get_metric
from slimnas.study._pareto import feasible, hypervolume_2d


def hypervolume_scales(rows: Sequence[dict], objectives: Sequence[str], budget: Sequence[Budget]) -> dict[str, dict]:
    """``objective -> {"key", "direction", "reference"}`` for the first two objectives: the value
    that maps to 1 (or, for a fraction to maximise, 0 maps to 1)."""
    out = {}
    for name in objectives[:2]:
        metric = get_metric(name)
        values = [r["metrics"][metric.key] for r in rows if _finite(r["metrics"].get(metric.key))]
        limits = [b.limit for b in budget if b.key == metric.key and b.op in ("<=", "<") and not b.relative]
        if metric.direction == "minimize":
            reference = min(limits) if limits else max(values, default=1.0)
        else:  # a fraction, or a task's metric with a best value (R², mAP: 1): 1 - v is its distance to it
            high = getattr(getattr(metric, "task_metric", None), "high", math.inf)
            reference = 1.0 if metric.unit == "fraction" else high if math.isfinite(high) else max(values, default=1.0)
        out[name] = {"key": metric.key, "direction": metric.direction, "reference": float(reference) or 1.0}
    return out


def scaled_point(metrics: dict, scales: dict[str, dict]) -> tuple[float, ...] | None:
    """A model's first two objectives on the scaled axes (``None`` when one is missing)."""
    point = []
    for s in scales.values():
        v = metrics.get(s["key"])
        if not _finite(v):
            return None
        point.append(v / s["reference"] if s["direction"] == "minimize" else 1 - v / s["reference"])
    return tuple(point)


def progress(rows: Sequence[dict], objectives: Sequence[str], budget: Sequence[Budget]) -> dict:
    """Per finished trial, in completion order: its first objective, whether it meets the
    budget, the best feasible first objective so far and (with two or more objectives) the
    hypervolume so far.

    Args:
        rows: trials as the report holds them (``trial``, ``state``, ``completed``, ``metrics``,
            ``feasible``); those without a completion time or metrics are left out.
    """
    first = get_metric(objectives[0])
    sign = -1.0 if first.direction == "maximize" else 1.0
    done = sorted((r for r in rows if r.get("completed") and r["state"] in ("complete", "pruned", "skipped")
                   and _finite(r["metrics"].get(first.key))), key=lambda r: (r["completed"], r["trial"]))
    scales = hypervolume_scales(done, objectives, budget) if len(objectives) >= 2 else {}
    points: list[tuple[float, ...]] = []
    best, out = None, []
    for r in done:
        value = r["metrics"][first.key]
        if r["feasible"] and r["state"] == "complete":
            best = value if best is None or sign * value < sign * best else best
            p = scaled_point(r["metrics"], scales) if scales else None
            if p is not None:
                points.append(p)
        out.append({"trial": r["trial"], "completed": r["completed"], "value": value, "feasible": r["feasible"],
                    "best": best, "hypervolume": hypervolume_2d(points, (1.0, 1.0)) if scales else None})
    return {"objective": first.name, "key": first.key, "scales": scales, "points": out}


def progress_rows(study: optuna.Study, budget: Sequence[Budget]) -> list[dict]:
    """The study's finished trials as :func:`progress` reads them (a listener that joins a
    resumed study starts from these)."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        metrics = {k: v for k, v in (t.user_attrs.get("metrics") or {}).items() if _finite(v)}
        state = "complete" if t.state == TrialState.COMPLETE else "pruned"
        if state == "complete" and (t.user_attrs.get("metrics") or {}).get("trained") is False:
            state = "skipped"
        rows.append({"trial": t.number, "state": state, "metrics": metrics,
                     "feasible": bool(metrics) and feasible(metrics, budget),
                     "completed": t.datetime_complete.isoformat() if t.datetime_complete else None})
    return rows


def estimate_eta(durations: Sequence[float], n_remaining: int, *, workers: int = 1, elapsed: float = 0.0,
                 timeout: float | None = None, running: Sequence[float] = ()) -> float | None:
    """Seconds until a search ends: the median trial time x the remaining trials / the workers
    (less what the trials running now have done), or the time left to ``timeout`` (no trial
    starts after it), whichever ends first.

    Args:
        durations: seconds the finished trials took (a resumed study's earlier trials count).
        n_remaining: trials still to finish, the running ones included.
        workers: processes running trials at once (never more than the trials left).
        elapsed: seconds since the search (this run of it) started; ``timeout`` counts from then.
        running: seconds each trial running now has been at it.

    Returns:
        ``None`` before any trial has finished (nothing to estimate from); 0 when nothing remains.

    Example:
        >>> estimate_eta([10, 12, 50], 6, workers=2)   # median 12 s, 6 trials, 2 at a time
        36.0
        >>> estimate_eta([10, 12, 50], 6, workers=2, elapsed=100, timeout=120)
        20.0
    """
    if n_remaining <= 0:
        return 0.0
    times = [float(d) for d in durations if _finite(d) and d >= 0]
    if not times:
        return None
    median = statistics.median(times)
    done_now = sum(min(max(r, 0.0), median) for r in running)
    at_once = max(1, min(int(workers), n_remaining))
    eta = max(median * n_remaining - done_now, 0.0) / at_once
    if timeout is not None:
        left = max(float(timeout) - elapsed, 0.0)
        if left <= 0:  # no new trial starts: the running ones finish, the least advanced last
            left = max((median - min(running)) if running else 0.0, 0.0)
        eta = min(eta, left)
    return eta


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
