"""Local search around the incumbent front, with restarts (White, Nolen & Savani 2020, "Local
Search is State of the Art for Neural Architecture Search Benchmarks": on NAS-Bench-101 it beat
regularized evolution, BANANAS, REINFORCE and random search).

A run starts from random candidates. Its incumbent is its best trial (several objectives: its
Pareto front, feasible trials first); each new candidate is an untried neighbour of an incumbent,
one gene changed: another choice of a categorical gene, a step down or up a numeric one. The
neighbours are tried in random order and the first that does better becomes the incumbent (first
improvement hill climbing). When every neighbour of every incumbent has been tried without
improvement the run is stuck in a local optimum, and a new run restarts from a random candidate.

The state is the study's trials: each trial's plan (its run, the incumbent it neighbours, the
gene changed and the values it inherits) is a trial system attribute, so the incumbent, what
has been tried and the run are derived from storage on every trial: a resumed study and several
workers continue the same search.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy
from slimnas.strategies._genes import neighbours, params_key, value_key
from slimnas.strategies._history import BaseHistorySampler, best_front, completed

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
        number, gene, value, params = moves[int(self.rng(study, trial, "neighbour").integers(len(moves)))]
        return {"run": run, "centre": number, "gene": gene, "value": value, "params": params}


@register_strategy("local")
class LocalSearchStrategy(BaseStrategy):
    description = "local search: one gene at a time around the incumbent front, restarts (White et al. 2020)"

    def sampler(self, ctx: StrategyContext) -> LocalSearchSampler:
        return LocalSearchSampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials)
