"""A REINFORCE controller (Williams 1992; Zoph & Le 2017, "Neural Architecture Search with
Reinforcement Learning", ICLR).

The policy is a product of one distribution per gene: learned logits (a softmax) for every
categorical gene, a Gaussian with learned mean and width on the (log-)range scaled to [0, 1] for
every numeric one. Zoph & Le's controller is an RNN that conditions each choice on the previous
ones; here define-by-run conditioning takes its place (a gene is drawn only when the choices
before it ask for it), and the genes are otherwise independent.

After each complete trial the controller takes one policy-gradient step,
``theta += lr * (reward - baseline) * grad log p(candidate)``, with an exponential moving average
of the rewards as the baseline. The reward is the objective, standardised by a running mean and
deviation (several objectives: the mean of their standardised values, higher is better); a trial
that breaks a budget is penalised below every feasible one, the more the further it misses. The
Gaussians take the natural-gradient form of the same step (mean moved towards rewarded values,
width grown or shrunk), which keeps it independent of the gene's scale.

The controller is a deterministic function of the study's complete trials, replayed in trial
order from their parameters, values and constraints, and it is persisted with the study: after
each trial a snapshot (the controller and the trials it has folded in) is written to the study
system attribute :data:`CONTROLLER_KEY`. A sampler continues from the snapshot when it is a
prefix of the history and replays from the start otherwise, so a resumed study continues the same
controller and workers that overwrite each other's snapshot never corrupt it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy
from slimnas.strategies._genes import from_unit, in_distribution, random_value, to_unit
from slimnas.strategies._history import BaseHistorySampler, completed

#: the study system attribute that holds the controller's snapshot
CONTROLLER_KEY = "slimnas:rl:controller"
#: standardised rewards are clipped to [-Z_CLIP, Z_CLIP]; budget misses fall below -Z_CLIP
Z_CLIP = 3.0
#: a Gaussian gene's width on [0, 1]: at the start, and its bounds
SIGMA_INIT, SIGMA_MIN, SIGMA_MAX = 0.25, 0.05, 0.5
#: the most a Gaussian's log-width moves in one step ((u - mu)^2 / sigma^2 is unbounded)
MAX_LOG_SIGMA_STEP = 0.25


@dataclass(frozen=True)
class _Outcome:
    """What the controller learns from one trial."""

    number: int
    params: dict
    distributions: dict
    values: tuple
    constraints: dict
    random: bool  # drawn at random (startup or enqueued): feeds the baseline, no gradient


def _outcome(trial: FrozenTrial, plan_key: str, values=None) -> _Outcome:
    plan = trial.system_attrs.get(plan_key) or {}
    return _Outcome(trial.number, dict(trial.params), dict(trial.distributions),
                    tuple(float(v) for v in (values if values is not None else trial.values)),
                    dict(trial.constraints), bool(plan.get("random", True)))


def new_controller(config: dict) -> dict:
    return {"config": config, "n": 0, "last": -1, "baseline": None, "objectives": [], "constraints": {},
            "logits": {}, "gaussians": {}}


def _welford(stat: list | None, x: float) -> list:
    """Running (count, mean, sum of squared deviations) with ``x`` added."""
    n, mean, m2 = stat or (0, 0.0, 0.0)
    n += 1
    delta = x - mean
    mean += delta / n
    return [n, mean, m2 + delta * (x - mean)]


def reward(ctrl: dict, outcome: _Outcome, signs: list[float]) -> float:
    """The trial's reward (higher is better), updating the running statistics in ``ctrl``."""
    stats = ctrl["objectives"] or [None] * len(signs)
    z = []
    for i, (v, sign) in enumerate(zip(outcome.values, signs, strict=True)):
        if not math.isfinite(v):  # a failed measurement: the worst reward
            z.append(-Z_CLIP)
            continue
        stats[i] = _welford(stats[i], sign * v)
        n, mean, m2 = stats[i]
        std = math.sqrt(m2 / n)
        z.append(0.0 if std == 0 else max(-Z_CLIP, min(Z_CLIP, (sign * v - mean) / std)))
    ctrl["objectives"] = stats
    missed = 0.0
    for name, c in sorted(outcome.constraints.items()):
        # a budget's scale: the running mean of |constraint| over the trials that reported it
        n, mean = ctrl["constraints"].get(name, (0, 0.0))
        n, mean = n + 1, mean + (abs(float(c)) - mean) / (n + 1)
        ctrl["constraints"][name] = [n, mean]
        if c > 0:
            missed += float(c) / mean if mean > 0 else 1.0
    if missed > 0:  # below every feasible trial, and lower the further it misses
        return -Z_CLIP - min(missed, Z_CLIP)
    return float(np.mean(z))


def _categorical(ctrl: dict, name: str, dist: CategoricalDistribution) -> dict:
    choices = list(dist.choices)
    entry = ctrl["logits"].get(name)
    if entry is None or entry["choices"] != choices:  # a new gene, or its choices changed
        entry = {"choices": choices, "theta": [0.0] * len(choices)}
    return entry


def _gaussian(ctrl: dict, name: str) -> dict:
    return ctrl["gaussians"].get(name) or {"mu": 0.5, "log_sigma": math.log(SIGMA_INIT)}


def softmax(theta) -> np.ndarray:
    e = np.exp(np.asarray(theta, dtype=float) - np.max(theta))
    return e / e.sum()


def fold(ctrl: dict, outcome: _Outcome, signs: list[float]) -> None:
    """One REINFORCE step on ``outcome`` (in place)."""
    lr, decay = ctrl["config"]["lr"], ctrl["config"]["baseline_decay"]
    r = reward(ctrl, outcome, signs)
    baseline = r if ctrl["baseline"] is None else ctrl["baseline"]
    advantage = r - baseline
    if not outcome.random and advantage != 0:
        for name, value in sorted(outcome.params.items()):
            dist = outcome.distributions[name]
            if dist.single() or not in_distribution(dist, value):
                continue
            if isinstance(dist, CategoricalDistribution):
                entry = _categorical(ctrl, name, dist)
                p = softmax(entry["theta"])
                onehot = np.eye(len(p))[int(dist.to_internal_repr(value))]
                # d log softmax(theta)[a] / d theta = onehot(a) - p
                entry["theta"] = [float(t) for t in np.asarray(entry["theta"]) + lr * advantage * (onehot - p)]
                ctrl["logits"][name] = entry
            else:
                g = _gaussian(ctrl, name)
                u, mu, sigma = to_unit(dist, value), g["mu"], math.exp(g["log_sigma"])
                # natural gradient of log N(u; mu, sigma): (u - mu) for mu, ((u-mu)^2/sigma^2 - 1)/2 for log sigma
                step = lr * advantage * ((u - mu) ** 2 / sigma**2 - 1) / 2
                step = max(-MAX_LOG_SIGMA_STEP, min(MAX_LOG_SIGMA_STEP, step))
                g = {"mu": min(1.0, max(0.0, mu + lr * advantage * (u - mu))),
                     "log_sigma": min(math.log(SIGMA_MAX), max(math.log(SIGMA_MIN), g["log_sigma"] + step))}
                ctrl["gaussians"][name] = g
    ctrl["baseline"] = decay * baseline + (1 - decay) * r
    ctrl["n"] += 1
    ctrl["last"] = outcome.number


def stored_controller(study: optuna.Study) -> dict | None:
    """The controller persisted with ``study`` (as of its last complete trial), or ``None``."""
    return study._storage.get_study_system_attrs(study._study_id).get(CONTROLLER_KEY)


class ReinforceSampler(BaseHistorySampler):
    """A REINFORCE controller as an Optuna sampler.

    Args:
        seed: with each trial's number, seeds its draws from the policy.
        lr: the policy-gradient step size.
        baseline_decay: the decay of the moving-average baseline.
        n_startup_trials: complete trials drawn at random first; they set the reward's scale and
            the baseline, and the policy learns from the trials it drew itself.

    Example:
        >>> import optuna
        >>> sampler = ReinforceSampler(seed=0, n_startup_trials=3)
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
        >>> study.optimize(lambda t: float(t.suggest_categorical("op", ["a", "b", "c"]) == "b"), n_trials=40)
        >>> controller = sampler.controller(study)
        >>> max(controller["logits"]["op"]["theta"]) == controller["logits"]["op"]["theta"][1]
        True
    """

    plan_key = "slimnas:rl"

    def __init__(self, *, seed: int = 0, lr: float = 0.2, baseline_decay: float = 0.8,
                 n_startup_trials: int = 5) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials)
        self.lr, self.baseline_decay = float(lr), float(baseline_decay)
        self._cache: tuple[Any, dict] | None = None  # one trial's controller, computed once for its genes

    def _config(self, study: optuna.Study) -> dict:
        return {"lr": self.lr, "baseline_decay": self.baseline_decay,
                "directions": [d.name for d in study.directions]}

    def _signs(self, study: optuna.Study) -> list[float]:
        return [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions]

    def _replay(self, study: optuna.Study, outcomes: list[_Outcome]) -> dict:
        """The controller after ``outcomes`` (by number), continuing the stored snapshot when it
        folded exactly a prefix of them with the same settings."""
        config = self._config(study)
        snapshot = stored_controller(study)
        ctrl = new_controller(config)
        if (snapshot and snapshot.get("config") == config and 0 < snapshot["n"] <= len(outcomes)
                and outcomes[snapshot["n"] - 1].number == snapshot["last"]):
            ctrl = copy.deepcopy(snapshot)  # an in-memory storage hands out its own dict
        signs = self._signs(study)
        for outcome in outcomes[ctrl["n"]:]:
            fold(ctrl, outcome, signs)
        return ctrl

    def controller(self, study: optuna.Study) -> dict:
        """The controller learnt from the study's complete trials (JSON: ``logits`` per
        categorical gene, ``gaussians`` per numeric one, ``baseline``)."""
        return self._replay(study, [_outcome(t, self.plan_key) for t in completed(study.get_trials(deepcopy=False))])

    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        return {"random": enqueued or len(completed(others)) < self.n_startup_trials}

    def propose(self, study: optuna.Study, trial: FrozenTrial, plan: dict, name: str, dist: BaseDistribution) -> Any:
        rng = self.rng(study, trial, "draw", name)
        if plan.get("random", True):
            return random_value(dist, rng)
        key = (id(study._storage), study._study_id, trial.number)
        if self._cache is None or self._cache[0] != key:
            others = [t for t in completed(study.get_trials(deepcopy=False)) if t.number != trial.number]
            self._cache = (key, self._replay(study, [_outcome(t, self.plan_key) for t in others]))
        ctrl = self._cache[1]
        if isinstance(dist, CategoricalDistribution):
            p = softmax(_categorical(ctrl, name, dist)["theta"])
            return dist.choices[int(rng.choice(len(p), p=p))]
        g = _gaussian(ctrl, name)
        return from_unit(dist, g["mu"] + math.exp(g["log_sigma"]) * rng.standard_normal())

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        # persist the controller with this trial folded in (the trial is not 'complete' in
        # storage yet, so it joins the history here)
        if state != TrialState.COMPLETE or values is None or self.plan_key not in trial.system_attrs:
            return
        others = [t for t in completed(study.get_trials(deepcopy=False)) if t.number != trial.number]
        outcomes = sorted([*(_outcome(t, self.plan_key) for t in others), _outcome(trial, self.plan_key, values)],
                          key=lambda o: o.number)
        study._storage.set_study_system_attr(study._study_id, CONTROLLER_KEY, self._replay(study, outcomes))


@register_strategy("rl")
class ReinforceStrategy(BaseStrategy):
    description = "REINFORCE controller: logits and Gaussians per gene, moving-average baseline (Zoph & Le 2017)"

    def sampler(self, ctx: StrategyContext) -> ReinforceSampler:
        return ReinforceSampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials)
