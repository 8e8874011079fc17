"""Local search around the incumbent front, with restarts (White, Nolen & Savani 2020, "Local
Search is State of the Art for Neural Architecture Search Benchmarks": on NAS-Bench-101 it beat
regularized evolution, BANANAS, REINFORCE and random search).

A run starts from random candidates. Its incumbent is its best trial (several objectives: its
Pareto front, feasible trials first); each new candidate is an untried neighbour of an incumbent,
one gene changed: another choice of a categorical gene, a step down or up a numeric one. The
neighbours are tried in random order and the first that does better becomes the incumbent (first
improvement hill climbing). When every neighbour of every incumbent has been tried without
improvement the run is stuck in a local optimum, and a new run restarts from a random candidate.
With two objectives (a Pareto local search) the front member to move from is drawn first, in
proportion to the hypervolume it alone adds (:func:`front_weights`), then one of its untried
neighbours at random: the trials go where the front would gain most area, its gaps and its ends,
rather than equally to every member of a crowded stretch.

The state is the study's trials: each trial's plan (its run, the incumbent it neighbours, the
gene changed and the values it inherits) is a trial system attribute, so the incumbent, what
has been tried and the run are derived from storage on every trial: a resumed study and several
workers continue the same search.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy
from slimnas.strategies._genes import neighbours, params_key, value_key
from slimnas.strategies._history import BaseHistorySampler, best_front, completed, signed_values

#: states whose plan counts as tried: evaluated, or being evaluated by another worker
TRIED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class LocalSearchSampler(BaseHistorySampler):
    """Local search as an Optuna sampler.

    Args:
        seed: with each trial's number, seeds its choice of neighbour and its draws.
        n_startup_trials: random trials the first run starts from (later runs restart from one).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=LocalSearchSampler(seed=0, n_startup_trials=2))
        >>> study.optimize(lambda t: abs(t.suggest_int("x", 0, 20) - 7), n_trials=30)
        >>> study.best_value
        0.0
    """

    plan_key = "slimnas:local"

    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        planned = [t for t in others if t.state in TRIED and self.plan_key in t.system_attrs]
        run = max((t.system_attrs[self.plan_key]["run"] for t in planned), default=0)
        in_run = [t for t in planned if t.system_attrs[self.plan_key]["run"] == run]
        n_random = sum(t.system_attrs[self.plan_key]["centre"] is None for t in in_run)
        done = completed(in_run)
        if enqueued or not done or n_random < (self.n_startup_trials if run == 0 else 1):
            return {"run": run, "centre": None}

        # what this run has tried: (centre, gene, value), and whole candidates (no going back)
        tried = {(p["centre"], p["gene"], value_key(p["value"]))
                 for p in (t.system_attrs[self.plan_key] for t in in_run) if p["centre"] is not None}
        seen = self.candidate_keys(study, in_run)
        moves = []
        for centre in best_front(done, study.directions):
            for gene in sorted(centre.params):
                dist = centre.distributions[gene]
                if dist.single():
                    continue
                for value in neighbours(dist, centre.params[gene]):
                    params = {**centre.params, gene: value}
                    if (centre.number, gene, value_key(value)) not in tried and params_key(params) not in seen:
                        moves.append((centre.number, gene, value, params))
        if not moves:  # a local optimum: every neighbour tried, none better
            return {"run": run + 1, "centre": None}
        rng = self.rng(study, trial, "neighbour")
        if len(study.directions) > 1:  # a front: aim at its gaps (see front_weights)
            numbers = sorted({m[0] for m in moves})
            signed = np.array([signed_values(t, study.directions) for t in done], dtype=float)
            worst = tuple(float(np.max(c[np.isfinite(c)])) if np.isfinite(c).any() else 0.0 for c in signed.T)
            weights = front_weights([t for t in done if t.number in numbers], study.directions, worst)
            pick = numbers[int(rng.choice(len(numbers), p=[weights[n] for n in numbers]))]
            moves = [m for m in moves if m[0] == pick]
        number, gene, value, params = moves[int(rng.integers(len(moves)))]
        return {"run": run, "centre": number, "gene": gene, "value": value, "params": params}


def front_weights(front: list[FrozenTrial], directions, reference: tuple[float, float]) -> dict[int, float]:
    """How often to move from each member of a front: in proportion to the hypervolume it alone
    adds (two objectives, both minimised as :func:`signed_values` gives them; bounded by the next
    member on each side and, at the ends, by ``reference``, the worst values seen), so the search
    spends its trials where the front would gain most area: its gaps and its ends. Other than two
    objectives: equal weights. Every member keeps a small share."""
    n = len(front)
    if n < 2 or len(directions) != 2:
        return {t.number: 1.0 / max(n, 1) for t in front}
    pts = sorted((*signed_values(t, directions), t.number) for t in front)
    w = {}
    for i, (xi, yi, num) in enumerate(pts):
        dx = (pts[i + 1][0] if i + 1 < n else reference[0]) - xi
        dy = (pts[i - 1][1] if i > 0 else reference[1]) - yi
        w[num] = max(dx, 0.0) * max(dy, 0.0)
    total = sum(w.values())
    if not total > 0 or not math.isfinite(total):
        return {num: 1.0 / n for num in w}
    return {k: 0.9 * v / total + 0.1 / n for k, v in w.items()}


@register_strategy("local")
class LocalSearchStrategy(BaseStrategy):
    description = "local search: one gene at a time around the incumbent front, restarts (White et al. 2020)"

    def sampler(self, ctx: StrategyContext) -> LocalSearchSampler:
        return LocalSearchSampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials)
