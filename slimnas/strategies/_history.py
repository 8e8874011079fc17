"""What the black-box samplers (evolution, local search, REINFORCE) share: a plan per trial kept in
the study's storage, random numbers drawn from (seed, trial's place), and the ranking of finished
trials with budgets as constraints.

Nothing is carried in a sampler object from one trial to the next. When a trial starts, its plan
(the parent or neighbour it comes from and the values it inherits) is written to the trial's
system attributes; its parameters are sampled from that plan, read back from storage; all else
is derived from the finished trials. So a fresh sampler — a resumed study, another worker on the
same study, one sampler per trial — continues the same sequence, and two samplers with the same
seed over the same history propose the same candidates.
"""

from __future__ import annotations

import abc
import math
import weakref
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from slimnas.strategies._early_stopping import nondominated_rank
from slimnas.strategies._genes import in_distribution, params_key, random_value
from slimnas.strategies._sequenced import position

#: trials a plan looks at: finished ones, and running ones (another worker's, whose plans count)
SEEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def trial_rng(seed: int, number: int, *labels: str) -> np.random.Generator:
    """A generator determined by the seed, the trial's number and ``labels`` alone."""
    words = [int(seed) % 2**64, int(number) % 2**64, *(zlib.crc32(str(label).encode()) for label in labels)]
    return np.random.default_rng(np.random.SeedSequence(words))


def violation(trial: FrozenTrial) -> float:
    """The trial's total constraint violation (0 when every budget is met). Budgets reach the
    samplers as Optuna constraints (``Trial.set_constraint``), ``<= 0`` when met."""
    return float(sum(max(0.0, float(c)) for c in trial.constraints.values()))


def signed_values(trial: FrozenTrial, directions: Sequence[StudyDirection]) -> list[float]:
    """The trial's objective values, all minimised; a missing or non-finite value is the worst."""
    out = []
    for v, d in zip(trial.values, directions, strict=True):
        v = float(v)
        out.append(math.inf if not math.isfinite(v) else (-v if d == StudyDirection.MAXIMIZE else v))
    return out


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance (Deb et al. 2002) of each row of one front: the sum over
    objectives of the gap between its neighbours, scaled by the objective's range; the ends of
    every objective get infinity."""
    n, d = len(points), np.zeros(len(points))
    if n <= 2:
        return np.full(n, math.inf)
    for j in range(points.shape[1]):
        col = points[:, j]
        finite = col[np.isfinite(col)]
        width = float(finite.max() - finite.min()) if len(finite) else 0.0
        if width <= 0:
            continue  # every member equal on this objective: it tells them apart no more
        order = np.argsort(col, kind="stable")
        d[order[0]] = d[order[-1]] = math.inf
        for a in range(1, n - 1):
            with np.errstate(invalid="ignore"):
                gap = col[order[a + 1]] - col[order[a - 1]]
            d[order[a]] += 0.0 if np.isnan(gap) else gap / width
    return d


def fitness_keys(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> dict[int, tuple]:
    """A sort key per trial number, smaller is better. Feasible trials come before every
    infeasible one, which rank by their total violation; feasible ones rank by their value (one
    objective), or by Pareto rank and then crowding distance, larger first (several objectives,
    as NSGA-II does)."""
    keys: dict[int, tuple] = {}
    ok = []
    for t in trials:
        v = violation(t)
        if v > 0:
            keys[t.number] = (1, v, 0.0, 0.0)
        else:
            ok.append(t)
    if not ok:
        return keys
    points = np.array([signed_values(t, directions) for t in ok], dtype=float)
    if points.shape[1] == 1:
        for t, p in zip(ok, points, strict=True):
            keys[t.number] = (0, 0.0, float(p[0]), 0.0)
        return keys
    rank = nondominated_rank(points)
    crowd = np.zeros(len(ok))
    for r in np.unique(rank):
        members = np.flatnonzero(rank == r)
        crowd[members] = crowding_distance(points[members])
    for t, r, c in zip(ok, rank, crowd, strict=True):
        keys[t.number] = (0, 0.0, float(r), -float(c))
    return keys


def best_front(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """The incumbents: the best trial for one objective; the non-dominated feasible trials for
    several; the least infeasible trial when none is feasible. Ties go to the earliest trial."""
    if not trials:
        return []
    keys = fitness_keys(trials, directions)
    best = min(trials, key=lambda t: (keys[t.number], t.number))
    if len(directions) == 1 or keys[best.number][0] == 1:
        return [best]
    return [t for t in trials if keys[t.number][0] == 0 and keys[t.number][2] == 0]


def completed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials with values, by number."""
    return sorted((t for t in trials if t.state == TrialState.COMPLETE and t.values is not None),
                  key=lambda t: t.number)


#: :func:`params_key` of finished trials, per storage and (study, trial number): a cache, not
#: state (gone with the storage)
_FINISHED_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class BaseHistorySampler(optuna.samplers.BaseSampler):
    """An Optuna sampler whose state is the study's history.

    Call order (Optuna's): :meth:`before_trial` computes the new trial's plan from the other
    trials (:meth:`plan`) and writes it to the trial's system attribute :attr:`plan_key`; each
    parameter the objective asks for is then sampled by :meth:`propose` from that plan, read
    back from storage. Relative sampling is not used: define-by-run spaces are conditional, so
    every parameter is sampled on its own, from the distribution the trial asks with.

    Args:
        seed: with the trial's place in the study, seeds every random choice of the trial.
        n_startup_trials: complete trials drawn at random before the algorithm starts.
    """

    #: the trial system attribute that holds each trial's plan
    plan_key: ClassVar[str] = ""

    def __init__(self, *, seed: int = 0, n_startup_trials: int = 5) -> None:
        self.seed = int(seed)
        self.n_startup_trials = int(n_startup_trials)

    def candidate_keys(self, study: optuna.Study, trials: Sequence[FrozenTrial]) -> set[str]:
        """:func:`params_key` of each of ``trials``. A finished trial's parameters never change,
        so its key is computed once per storage (a search of thousands of trials checks every
        child against all of them, and each trial gets a sampler of its own); a running trial's
        is computed afresh."""
        out = set()
        try:
            cache = _FINISHED_KEYS.setdefault(study._storage, {})
        except TypeError:  # a storage that cannot be weakly referenced: no cache
            cache = {}
        for t in trials:
            if not t.state.is_finished():
                out.add(params_key(t.params))
                continue
            cache_key = (study._study_id, t.number)
            key = cache.get(cache_key)
            if key is None:
                key = cache[cache_key] = params_key(t.params)
            out.add(key)
        return out

    def rng(self, study: optuna.Study, trial: FrozenTrial, *labels: str) -> np.random.Generator:
        """The trial's random numbers, from the seed and its place in the study (its number less
        the failed trials before it): a trial re-run after a crash draws what it drew before."""
        return trial_rng(self.seed, position(study, trial.number), *labels)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.plan_key in trial.system_attrs:  # planned already (a wrapper called us twice)
            return
        others = sorted((t for t in study.get_trials(deepcopy=False, states=SEEN) if t.number != trial.number),
                        key=lambda t: t.number)
        # an enqueued trial (``study.enqueue_trial``: compress --auto's warm starts) has its
        # values fixed by the caller; it counts as a random one
        enqueued = bool(trial.system_attrs.get("fixed_params"))
        plan = self.plan(study, trial, others, enqueued=enqueued)
        study._storage.set_trial_system_attr(trial._trial_id, self.plan_key, plan)

    def plan_of(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        """The trial's plan, from storage (made now if the trial began under another sampler)."""
        plan = trial.system_attrs.get(self.plan_key)
        if plan is None:
            self.before_trial(study, trial)
            plan = study._storage.get_trial_system_attrs(trial._trial_id)[self.plan_key]
        return plan

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.propose(study, trial, self.plan_of(study, trial), param_name, param_distribution)

    @abc.abstractmethod
    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        """The new trial's plan (JSON), from the other trials (finished or running, by number)."""

    def propose(self, study: optuna.Study, trial: FrozenTrial, plan: dict, name: str,
                dist: BaseDistribution) -> Any:
        """The value of parameter ``name``: the plan's when it has one that fits ``dist``,
        else a uniform draw (a parameter the parent or centre lacked)."""
        params = plan.get("params") or {}
        if name in params and in_distribution(dist, params[name]):
            return params[name]
        return random_value(dist, self.rng(study, trial, "draw", name))
