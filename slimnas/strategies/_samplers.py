"""Black-box strategies by name, backed by Optuna samplers (their state lives in the study)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

from slimnas.registry import Registry
from slimnas.spaces import SearchSpace


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy factory may use to build its sampler. Budgets reach constrained samplers
    through ``Trial.set_constraint``, recorded by the trial objective."""

    space: SearchSpace
    seed: int
    n_objectives: int
    n_startup_trials: int
    population_size: int


STRATEGIES: Registry[Callable[[StrategyContext], optuna.samplers.BaseSampler]] = Registry("strategy.name")


def register_strategy(name: str):
    """Register ``factory(ctx: StrategyContext) -> optuna.samplers.BaseSampler``."""
    return STRATEGIES.register(name)


def make_sampler(name: str, ctx: StrategyContext) -> optuna.samplers.BaseSampler:
    return STRATEGIES.get(name)(ctx)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


@register_strategy("random")
def _random(ctx: StrategyContext):
    return optuna.samplers.RandomSampler(seed=ctx.seed)


@register_strategy("grid")
def _grid(ctx: StrategyContext):
    # per-layer choices are tied (see SearchSpace.grid) so the grid stays enumerable
    return optuna.samplers.GridSampler(ctx.space.grid(), seed=ctx.seed)


@register_strategy("tpe")
def _tpe(ctx: StrategyContext):
    return optuna.samplers.TPESampler(
        seed=ctx.seed,
        n_startup_trials=ctx.n_startup_trials,
        multivariate=True,
        group=True,  # define-by-run spaces: model each conditional group jointly
    )


@register_strategy("bohb")
def _bohb(ctx: StrategyContext):
    # BOHB (Falkner et al. 2018) = multivariate TPE + Hyperband early stopping; the pruner is
    # chosen in make_pruner.
    return _tpe(ctx)


@register_strategy("gp")
def _gp(ctx: StrategyContext):
    return optuna.samplers.GPSampler(
        seed=ctx.seed, n_startup_trials=ctx.n_startup_trials
    )


@register_strategy("nsga2")
def _nsga2(ctx: StrategyContext):
    return optuna.samplers.NSGAIISampler(
        seed=ctx.seed, population_size=ctx.population_size
    )


@register_strategy("cmaes")
def _cmaes(ctx: StrategyContext):
    # CMA-ES covers the numeric parameters; categorical ones fall back to independent sampling
    return optuna.samplers.CmaEsSampler(
        seed=ctx.seed,
        n_startup_trials=ctx.n_startup_trials,
        warn_independent_sampling=False,
        independent_sampler=optuna.samplers.RandomSampler(seed=ctx.seed),
    )
