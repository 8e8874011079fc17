"""A toy strategy in one file: random search on a seed stream of its own."""

import optuna

from slimnas.strategies import BaseStrategy, register_strategy


@register_strategy("toy-random")
class ToyRandomStrategy(BaseStrategy):
    description = "random search on its own seed stream (a test plug-in)"

    def sampler(self, ctx):
        return optuna.samplers.RandomSampler(seed=ctx.seed + 1000)
