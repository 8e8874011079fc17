"""The built-in strategies, each an Optuna sampler (its state lives in the study)."""

from __future__ import annotations

import optuna

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy


@register_strategy("random")
class RandomStrategy(BaseStrategy):
    description = "independent uniform draws"

    def sampler(self, ctx: StrategyContext):
        return optuna.samplers.RandomSampler(seed=ctx.seed)


@register_strategy("grid")
class GridStrategy(BaseStrategy):
    description = "every combination (per-layer choices tied)"
    needs_grid = True
    sequenced = False  # the seed shuffles the grid once; which points are done lives in the storage
    exact_resume = False  # an interrupted point is re-run, and the points after it come in another order

    def sampler(self, ctx: StrategyContext):
        # per-layer choices are tied (see SearchSpace.grid) so the grid stays enumerable
        return optuna.samplers.GridSampler(ctx.space.grid(), seed=ctx.seed)


@register_strategy("tpe")
class TPEStrategy(BaseStrategy):
    description = "Bayesian optimisation, tree-structured Parzen estimators (multivariate)"

    def sampler(self, ctx: StrategyContext):
        return optuna.samplers.TPESampler(
            seed=ctx.seed,
            n_startup_trials=ctx.n_startup_trials,
            multivariate=True,
            group=True,  # define-by-run spaces: model each conditional group jointly
        )


@register_strategy("bohb")
class BOHBStrategy(TPEStrategy):
    # BOHB (Falkner et al. 2018) = multivariate TPE + Hyperband early stopping
    description = "TPE with Hyperband early stopping"
    default_early_stopping = "hyperband"


class ParallelSafeGPSampler(optuna.samplers.GPSampler):
    """Optuna's GP sampler, safe with several workers on a define-by-run space.

    The GP sampler infers its search space (the parameters every complete trial has) when a
    trial starts, then reads the complete trials again when it samples. Another worker's trial
    that completed in between, without one of those parameters (a shallower network has no
    ``cnn.channels_4``), made it fail with a ``KeyError`` and the worker with it. Here the
    trials it fits are those that have every parameter of the search space.
    """

    def _sample_relative_impl(self, study, completed_trials, running_trials, search_space):
        keys = search_space.keys()
        completed_trials = [t for t in completed_trials if keys <= t.params.keys()]
        if not completed_trials:
            return {}
        return super()._sample_relative_impl(study, completed_trials, running_trials, search_space)


@register_strategy("gp")
class GPStrategy(BaseStrategy):
    description = "Bayesian optimisation with a Gaussian process"

    def sampler(self, ctx: StrategyContext):
        return ParallelSafeGPSampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials)


@register_strategy("nsga2")
class NSGA2Strategy(BaseStrategy):
    description = "genetic algorithm with non-dominated sorting (Deb et al. 2002)"

    def sampler(self, ctx: StrategyContext):
        return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=ctx.population_size)


@register_strategy("cmaes")
class CMAESStrategy(BaseStrategy):
    description = "CMA evolution strategy on the numeric genes (one objective)"
    multi_objective = False
    exact_resume = False  # its generations, kept in the storage, count the interrupted trial's sample

    def sampler(self, ctx: StrategyContext):
        # CMA-ES covers the numeric parameters; categorical ones fall back to independent sampling
        return optuna.samplers.CmaEsSampler(
            seed=ctx.seed,
            n_startup_trials=ctx.n_startup_trials,
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=ctx.seed),
        )
