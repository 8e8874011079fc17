"""Regularized (aging) evolution (Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search", AAAI).

Each cycle samples ``tournament_size`` members of the population at random, takes the best as
the parent and mutates one or two of its genes (architecture, training recipe and compression
genes alike) into a child. The population is the ``population_size`` most recent complete trials:
the child joins it and the oldest member leaves, however good it was. Ageing out the old is what
"regularized" means: a model survives only by having children that do well, which favours
genes that train well again over one lucky evaluation.

Two rules for small budgets: a child over a budget (measured, not trained) does not join a
population that has ``population_size`` members within the budgets, since a tournament never
prefers it and it would only push out a trained member; and a child that repeats a candidate the
study has tried (or is trying) is drawn again, from a new tournament, up to :data:`MAX_DRAWS`
times, as a repeated evaluation is a trial lost.

The population is the study's own trials, so it is in the study's storage by construction; each
child's plan (its parent, the genes mutated, the values it inherits) is a trial system attribute.
A resumed study or another worker on the same study continues the same population.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy
from slimnas.strategies._genes import mutate, params_key
from slimnas.strategies._history import BaseHistorySampler, completed, fitness_keys, violation

#: tournaments drawn for a child before one that repeats a candidate of the study is taken
MAX_DRAWS = 16


class RegularizedEvolutionSampler(BaseHistorySampler):
    """Aging evolution as an Optuna sampler.

    Several objectives rank the population by Pareto rank, then crowding distance (as NSGA-II);
    budgets recorded as Optuna constraints make every infeasible member worse than every feasible
    one (the least violating first).

    Args:
        seed: with each trial's number, seeds its tournament, mutation and draws.
        population_size: the most recent complete trials that form the population.
        tournament_size: members sampled per tournament (default: a quarter of the population,
            at least 2, as Real et al.'s 25 of 100).
        n_startup_trials: complete trials drawn at random before the first child.

    Example:
        >>> import optuna
        >>> sampler = RegularizedEvolutionSampler(seed=0, population_size=8, n_startup_trials=4)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: (t.suggest_int("x", -5, 5) - 2) ** 2, n_trials=30)
        >>> study.best_value
        0.0
    """

    plan_key = "slimnas:evolution"

    def __init__(self, *, seed: int = 0, population_size: int = 20, tournament_size: int | None = None,
                 n_startup_trials: int = 5) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials)
        self.population_size = max(1, int(population_size))
        self.tournament_size = max(1, int(tournament_size or max(2, self.population_size // 4)))

    def population(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """The ``population_size`` most recent complete trials of ``trials`` that meet the
        budgets; while fewer meet them, the most recent others fill the places left."""
        done = completed(trials)
        recent: list[FrozenTrial] = []
        for t in reversed(done):  # newest first: usually the population is found well before the start
            if violation(t) == 0:
                recent.append(t)
                if len(recent) == self.population_size:
                    return recent[::-1]
        feasible = recent[::-1]
        others = [t for t in done if violation(t) > 0][len(feasible) - self.population_size:]
        keep = {t.number for t in feasible + others}
        return [t for t in done if t.number in keep]

    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        done = completed(others)
        if enqueued or len(done) < self.n_startup_trials or not done:
            return {"parent": None}
        population = self.population(others)
        keys = fitness_keys(population, study.directions)
        seen = self.candidate_keys(study, others)
        plan: dict = {"parent": None}
        for attempt in range(MAX_DRAWS):
            plan = self._child(population, keys, self.rng(study, trial, "tournament", *([str(attempt)] if attempt else [])))
            if params_key(plan["params"]) not in seen:
                break
        return plan

    def _child(self, population: list[FrozenTrial], keys: dict[int, tuple], rng) -> dict:
        """A tournament's winner mutated in one or two genes."""
        picked = rng.choice(len(population), size=min(self.tournament_size, len(population)), replace=False)
        # the best of the tournament; between equals, the younger
        parent = min((population[int(i)] for i in picked), key=lambda t: (keys[t.number], -t.number))
        genes = sorted(name for name, dist in parent.distributions.items() if not dist.single())
        if not genes:
            return {"parent": parent.number, "mutated": [], "params": dict(parent.params)}
        n_mutated = min(len(genes), int(rng.integers(1, 3)))  # one or two genes
        mutated = sorted(str(genes[int(i)]) for i in rng.choice(len(genes), size=n_mutated, replace=False))
        params = dict(parent.params)
        for name in mutated:
            params[name] = mutate(parent.distributions[name], params[name], rng)
        return {"parent": parent.number, "mutated": mutated, "params": params}


@register_strategy("evolution")
class EvolutionStrategy(BaseStrategy):
    description = "regularized (aging) evolution: tournament, mutate 1-2 genes (Real et al. 2019)"

    def sampler(self, ctx: StrategyContext) -> RegularizedEvolutionSampler:
        return RegularizedEvolutionSampler(seed=ctx.seed, population_size=ctx.population_size,
                                           n_startup_trials=ctx.n_startup_trials)
