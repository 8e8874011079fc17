"""Early stopping of weak trials from per-epoch validation accuracy.

Single-objective studies use Optuna's own pruners (median; Hyperband, which with TPE is BOHB).
Optuna's pruners do not apply to multi-objective studies, so :class:`ParetoHalvingStopper` ranks
a trial's intermediate vector (validation accuracy at this epoch, plus the costs known before
training) against its peers at the same epoch by non-dominated sorting, as in multi-objective
asynchronous successive halving (Schmucker et al. 2021). Peer curves are read from the study's
storage (trial user attribute ``curve``), so the rule works across resumed and parallel workers.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import TrialState

from slimnas.errors import ConfigError
from slimnas.strategies._base import get_strategy
from slimnas.training import Callback

#: early-stopping rules: keep the better half of the trials at each epoch, or Hyperband's rungs
EARLY_STOPPING = ("none", "median", "hyperband")


def check_early_stopping(name: str, field: str = "strategy.early_stopping") -> str:
    if name not in EARLY_STOPPING:
        raise ConfigError(field, f"one of {list(EARLY_STOPPING)}", name)
    return name


def early_stopping_rule(name: str, strategy: str) -> str:
    """The rule a study runs: ``name``, or the strategy's own when ``name`` is ``none`` (BOHB)."""
    check_early_stopping(name)
    return get_strategy(strategy).default_early_stopping if name == "none" else name


def optuna_pruner(rule: str, *, n_objectives: int, max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's implementation of ``rule`` for single-objective studies (``NopPruner`` where it
    cannot apply: several objectives use :class:`ParetoHalvingStopper`)."""
    if n_objectives > 1 or rule == "none":
        return optuna.pruners.NopPruner()
    if rule == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, max_epochs // 4))
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)


#: rows up to which :func:`nondominated_rank` builds the whole dominance matrix (n² booleans)
DOMINANCE_MATRIX_ROWS = 4096


def nondominated_rank(points: np.ndarray) -> np.ndarray:
    """Front index of every row (0 = non-dominated); all columns are minimised.

    The dominance relation is computed once, as an ``n x n`` matrix, then the fronts are peeled
    off it; past :data:`DOMINANCE_MATRIX_ROWS` rows (the matrix would take too much memory) each
    front is found row by row instead."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    rank = np.full(n, -1)
    if n > DOMINANCE_MATRIX_ROWS:
        return _rank_row_by_row(points, rank)
    # beats[j, i]: row j dominates row i (no worse anywhere, better somewhere)
    no_worse = np.ones((n, n), dtype=bool)
    better = np.zeros((n, n), dtype=bool)
    for col in points.T:
        no_worse &= col[:, None] <= col[None, :]
        better |= col[:, None] < col[None, :]
    beats = no_worse & better
    remaining = np.ones(n, dtype=bool)
    level = 0
    while remaining.any():
        front = remaining & ~beats[remaining].any(axis=0)
        rank[front] = level
        remaining &= ~front
        level += 1
    return rank


def _rank_row_by_row(points: np.ndarray, rank: np.ndarray) -> np.ndarray:
    remaining = np.arange(len(points))
    level = 0
    while len(remaining):
        p = points[remaining]
        dominated = np.array([
            np.any(np.all(p <= p[i], axis=1) & np.any(p < p[i], axis=1)) for i in range(len(p))
        ])
        rank[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return rank


class ParetoHalvingStopper(Callback):
    """Stops a trial whose intermediate result ranks outside the top fraction of its peers.

    Args:
        trial: the running trial; its curve is written to storage every epoch.
        costs: costs known before training (minimised), e.g. ``{"macs": 12000}``.
        rule: ``"median"`` keeps the better half at every epoch after warm-up;
            ``"hyperband"`` keeps the best third at rungs 1, 3, 9, ... epochs.
        n_startup_trials: peers needed before anything is stopped.
    """

    def __init__(self, trial: optuna.Trial, costs: dict[str, float], *, rule: str, max_epochs: int,
                 n_startup_trials: int = 5, reduction_factor: int = 3,
                 watched: tuple[str, str] = ("val_accuracy", "maximize")) -> None:
        self.trial, self.costs, self.rule = trial, costs, rule
        # the per-epoch quality figure, negated where less is better (the ranking maximises it)
        self.key, self.sign = watched[0], 1.0 if watched[1] == "maximize" else -1.0
        self.max_epochs, self.n_startup_trials, self.eta = max_epochs, n_startup_trials, reduction_factor
        self.curve: list[float] = []

    def _is_rung(self, epoch: int) -> bool:
        if epoch >= self.max_epochs:
            return False
        if self.rule == "median":
            return epoch >= max(1, self.max_epochs // 4)
        k = math.log(epoch, self.eta)
        return abs(k - round(k)) < 1e-9

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.curve.append(self.sign * float(metrics.get(self.key, 0.0)))
        self.trial.set_user_attr("curve", self.curve)
        if not self._is_rung(epoch):
            return
        peers = [
            t for t in self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if len(t.user_attrs.get("curve", [])) >= epoch and t.number != self.trial.number
        ]
        if len(peers) < self.n_startup_trials:
            return
        keys = sorted(self.costs)
        rows = [[-t.user_attrs["curve"][epoch - 1]] + [t.user_attrs.get("costs", {}).get(k, 0.0) for k in keys]
                for t in peers]
        rows.append([-self.curve[-1]] + [self.costs[k] for k in keys])
        points = np.asarray(rows, dtype=float)
        rank = nondominated_rank(points)
        # order by front index, then accuracy; keep the top 1/2 (median) or 1/eta (hyperband)
        order = sorted(range(len(points)), key=lambda i: (rank[i], points[i, 0]))
        keep = math.ceil(len(points) / (2 if self.rule == "median" else self.eta))
        if order.index(len(points) - 1) >= keep:
            raise optuna.TrialPruned(f"epoch {epoch}: outside the top {keep} of {len(points)} by Pareto rank")


class OptunaReporter(Callback):
    """Reports a per-epoch value to Optuna's pruner (single-objective studies)."""

    def __init__(self, trial: optuna.Trial, value_fn, watched: tuple[str, str] = ("val_accuracy", "maximize")) -> None:
        self.trial, self.value_fn = trial, value_fn
        self.key = watched[0]
        self.curve: list[float] = []

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.curve.append(float(metrics.get(self.key, 0.0)))
        self.trial.set_user_attr("curve", self.curve)
        self.trial.report(self.value_fn(metrics), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: pruned by {type(self.trial.study.pruner).__name__}")
