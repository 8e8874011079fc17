"""The values one Optuna parameter (a gene) can take: uniform draws, mutation, neighbours, and the
unit interval numeric genes map to.

The evolution, local-search and REINFORCE samplers read distributions from trials
(``trial.distributions``), never from a :class:`slimnas.spaces.SearchSpace`, so they work on any
define-by-run space: a search's architecture, recipe and compression genes, or ``compress
--auto``'s per-layer ratios and precisions. Every function returns plain Python values (JSON
round-trips them exactly), as the samplers keep their plans in the study's storage.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

#: a continuous gene's mutation: a Gaussian step of this width on its (log-)range scaled to [0, 1]
MUTATION_SIGMA = 0.2
#: a numeric gene's neighbours lie this far away on its (log-)range scaled to [0, 1]
NEIGHBOUR_STEP = 0.1
#: a discrete numeric gene with at most this many values mutates like a categorical one
FEW_VALUES = 16


def in_distribution(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one of ``dist``'s values."""
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def value_key(value: Any) -> str:
    """A hashable, exact key of a parameter value (``True`` and ``1`` differ)."""
    return json.dumps(value)


def params_key(params: dict) -> str:
    """A hashable, exact key of a whole candidate (its parameters, in any order)."""
    return json.dumps(sorted(params.items()), default=str)


def _n_values(dist: BaseDistribution) -> float:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    step = dist.step
    return math.inf if step is None else math.floor((dist.high - dist.low) / step + 1e-9) + 1


def _snap(dist: FloatDistribution | IntDistribution, x: float) -> int | float:
    """``x`` clipped to the range and rounded to the gene's grid."""
    x = min(max(x, dist.low), dist.high)
    step = dist.step
    if step is not None:
        x = dist.low + round((x - dist.low) / step) * step
        x = min(max(x, dist.low), dist.high)
    return int(round(x)) if isinstance(dist, IntDistribution) else float(x)


def to_unit(dist: FloatDistribution | IntDistribution, value: float) -> float:
    """A numeric value's position in [0, 1] along its range (its log-range when ``log``)."""
    low, high, v = float(dist.low), float(dist.high), float(value)
    if dist.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return min(1.0, max(0.0, (v - low) / (high - low)))


def from_unit(dist: FloatDistribution | IntDistribution, u: float) -> int | float:
    """The value at position ``u`` of the (log-)range, on the gene's grid."""
    u = min(1.0, max(0.0, float(u)))
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        return _snap(dist, math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
    return _snap(dist, low + u * (high - low))


def random_value(dist: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniform draw (log-uniform for ``log`` genes), like Optuna's ``RandomSampler``."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[int(rng.integers(len(dist.choices)))]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    step = dist.step
    if dist.log:
        # integers: every value gets the log-width of [v - 0.5, v + 0.5]
        pad = 0.5 if isinstance(dist, IntDistribution) else 0.0
        low, high = math.log(dist.low - pad), math.log(dist.high + pad)
        return _snap(dist, math.exp(rng.uniform(low, high)))
    if step is not None:
        return _snap(dist, dist.low + int(rng.integers(_n_values(dist))) * step)
    return float(rng.uniform(dist.low, dist.high))


def _discrete_values(dist: FloatDistribution | IntDistribution) -> list:
    step = dist.step
    return [_snap(dist, dist.low + k * step) for k in range(int(_n_values(dist)))]


def mutate(dist: BaseDistribution, value: Any, rng: np.random.Generator) -> Any:
    """Another value of the gene: a categorical or few-valued gene takes one of its other values
    at random (Real et al. 2019's mutation); a continuous or many-valued one moves by a Gaussian
    step of :data:`MUTATION_SIGMA` on its (log-)range. ``value`` itself when it has no other."""
    if isinstance(dist, CategoricalDistribution):
        index = dist.to_internal_repr(value) if in_distribution(dist, value) else -1
        others = [c for i, c in enumerate(dist.choices) if i != index]
        return others[int(rng.integers(len(others)))] if others else value
    assert isinstance(dist, FloatDistribution | IntDistribution)
    if dist.single():
        return value
    if _n_values(dist) <= FEW_VALUES:
        others = [v for v in _discrete_values(dist) if v != value]
        return others[int(rng.integers(len(others)))]
    u = to_unit(dist, value)
    for _ in range(32):
        step = rng.normal(0.0, MUTATION_SIGMA)
        moved = u + step
        moved = -moved if moved < 0 else (2 - moved if moved > 1 else moved)  # reflect at the ends
        new = from_unit(dist, moved)
        if new != value:
            return new
    return neighbours(dist, value)[0]


def neighbours(dist: BaseDistribution, value: Any) -> list:
    """The values one move away: every other choice of a categorical gene; the values
    :data:`NEIGHBOUR_STEP` below and above a numeric one (at least one grid step), inside the range."""
    if isinstance(dist, CategoricalDistribution):
        index = dist.to_internal_repr(value) if in_distribution(dist, value) else -1
        return [c for i, c in enumerate(dist.choices) if i != index]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    u, step, out = to_unit(dist, value), dist.step, []
    for sign in (-1, 1):
        new = from_unit(dist, u + sign * NEIGHBOUR_STEP)
        if new == value and step is not None:  # a coarse grid: the next value on it
            new = _snap(dist, value + sign * step)
        if new != value and new not in out and in_distribution(dist, new):
            out.append(new)
    return out
