"""Conformance of a registered strategy, through the real study driver on a real SQLite storage,
with a synthetic objective (a deterministic function of the candidate) instead of training."""

from __future__ import annotations

import math
import multiprocessing as mp
import tempfile
from pathlib import Path

import optuna
import torch

from slimnas.data import DataSplits
from slimnas.errors import ConfigError
from slimnas.measure import count_macs
from slimnas.models import build_model
from slimnas.registry import load_plugins
from slimnas.spaces import SearchSpace
from slimnas.strategies import BaseOneShotStrategy, OneShotContext, get_strategy
from slimnas.study import BaseTrialObjective, StudySpec, open_study, run_study
from slimnas.study._driver import n_finished, torch_threads

SPACE = {"family": ["cnn", "mlp"],
         "cnn": {"n_layers": {"low": 1, "high": 3}, "channels": [4, 8, 16], "kernel": [3, 5], "stride": [1, 2],
                 "residual": [False, True], "head": ["gap", "flatten"]},
         "mlp": {"n_layers": {"low": 1, "high": 2}, "width": [8, 16, 32]}}
TRAINING = {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "optimizer": ["adam", "sgd"]}
GRID_SPACE = {"family": "mlp", "mlp": {"n_layers": [1, 2], "width": [8, 16, 32]}}
GRID_TRAINING = {"lr": [0.01, 0.1], "optimizer": "adam"}
N_TRIALS = 8
#: options that keep a one-shot strategy's search short on the synthetic data (darts')
ONE_SHOT_OPTIONS = {"darts": {"warmup_epochs": 1, "search_epochs": 1}}


def synthetic_splits(seed: int = 0) -> DataSplits:
    """Tiny data shaped like the synthetic objective's candidates, (1, 16) in and 4 classes,
    whose class is where the signal peaks (a one-shot strategy searches on it)."""
    gen = torch.Generator().manual_seed(seed)

    def make(n: int):
        y = torch.randint(0, 4, (n,), generator=gen)
        x = 0.3 * torch.randn(n, 1, 16, generator=gen)
        x[torch.arange(n), 0, 4 * y + 1] += 2.0
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = make(64), make(32), make(32)
    return DataSplits("synthetic", xt, yt, xv, yv, xs, ys, 4)


def space_for(strategy: str) -> SearchSpace:
    if get_strategy(strategy).needs_grid:
        return SearchSpace.from_config(GRID_SPACE, GRID_TRAINING)
    return SearchSpace.from_config(SPACE, TRAINING)


class SyntheticObjective(BaseTrialObjective):
    """Samples a candidate and scores it without training: MACs counted on the built model, an
    'accuracy' that grows with them and with a learning rate near 1e-2. Deterministic."""

    def __init__(self, space: SearchSpace, objectives: tuple[str, ...], *, interrupt_at: int | None = None,
                 tie_layers: bool = False) -> None:
        super().__init__(objectives=objectives, budget=(), early_stopping="none")
        self.space, self.interrupt_at, self.tie_layers, self.calls = space, interrupt_at, tie_layers, 0

    def __call__(self, trial: optuna.Trial):
        self.calls += 1
        cand = self.space.sample(trial, tie_layers=self.tie_layers)
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt  # what a Ctrl-C does in the middle of a trial's training
        macs = count_macs(build_model(cand.arch, (1, 16), 4), (1, 16))
        accuracy = 1 - 1 / (1 + math.log1p(macs)) - 0.05 * abs(math.log10(cand.train.lr) + 2)
        metrics = {"val_accuracy": accuracy, "macs": macs, "params": macs}
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("candidate", cand.to_dict())
        return self.values(metrics)


def _spec(strategy: str, storage: str, name: str, objectives: tuple[str, ...], seed: int) -> StudySpec:
    return StudySpec(name=name, storage=storage, objectives=objectives, strategy=strategy, early_stopping="none",
                     seed=seed, max_epochs=1, space=space_for(strategy), n_startup_trials=3, population_size=4,
                     options=ONE_SHOT_OPTIONS.get(strategy))


def _run(strategy: str, storage: str, name: str, objectives: tuple[str, ...], seed: int, n_trials: int,
         interrupt_at: int | None = None) -> tuple[optuna.Study, bool]:
    spec = _spec(strategy, storage, name, objectives, seed)
    study = open_study(spec)
    one_shot = get_strategy(strategy)
    if isinstance(one_shot, BaseOneShotStrategy):  # its search runs before the first trial, as a search does
        with torch_threads(1):
            one_shot.prepare(study, OneShotContext(space=spec.space, data=synthetic_splits(seed),
                                                   folder=Path(tempfile.mkdtemp(prefix="slimnas-oneshot-")),
                                                   objectives=objectives, seed=seed, options=spec.options or {}))
    objective = SyntheticObjective(spec.space, objectives, interrupt_at=interrupt_at,
                                   tie_layers=get_strategy(strategy).needs_grid)
    return study, run_study(study, objective, n_trials=n_trials)


def worker_context() -> mp.context.BaseContext:
    """Where the workers of the two-worker check start: a fork server that has imported
    slimnas and PyTorch once, so each check's workers start in milliseconds, not seconds (a
    fresh interpreter each, as ``spawn``, where the platform has no fork server)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # no effect once the server runs: it has them already
    return ctx


def _worker(strategy: str, storage: str, name: str, objectives: tuple[str, ...], seed: int, n_trials: int) -> None:
    load_plugins()  # a spawned process starts with the built-ins only
    _run(strategy, storage, name, objectives, seed, n_trials)


def in_space(space: SearchSpace, name: str, value) -> bool:
    """Whether a trial parameter's value is one the space allows."""
    if name == "arch.family":
        return value in space.families
    prefix, _, key = name.partition(".")
    params = space.training if prefix == "train" else space.params[prefix]
    key = key.rsplit("_", 1)[0] if key not in params else key  # per-layer genes: <key>_<i>
    p = params[key]
    return value in p.values if p.values is not None else p.low <= value <= p.high


def check_strategy(name: str, folder: str | Path) -> dict:
    """Run every check on the strategy registered as ``name``, with SQLite studies in ``folder``;
    raises ``AssertionError`` naming the first that fails. Returns what was checked.

    1. Seeded determinism: two studies with the same seed propose the same candidates; another
       seed proposes others.
    2. Every proposed value lies inside the space.
    3. Interrupted by a Ctrl-C in a trial, the study resumes to its total, without duplicate
       trials or candidates, and (``exact_resume`` strategies) ends with the candidates of an
       uninterrupted study.
    4. Several objectives work, or are refused with one clear :class:`ConfigError` up front.
    5. Two worker processes on one study complete it together, without duplicate trials.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{folder / f'{name}.db'}"
    single = ("accuracy",)

    a, _ = _run(name, storage, "a", single, seed=3, n_trials=N_TRIALS)
    b, _ = _run(name, storage, "b", single, seed=3, n_trials=N_TRIALS)
    c, _ = _run(name, storage, "c", single, seed=4, n_trials=N_TRIALS)
    params = [[t.params for t in s.trials] for s in (a, b, c)]
    assert params[0] == params[1], f"{name}: the same seed proposed different candidates"
    if len({str(p) for p in params[0]}) > 1:  # a strategy that proposes anything else than one point
        assert params[0] != params[2], f"{name}: a different seed proposed the very same candidates"

    space = space_for(name)
    for study in (a, c):
        for t in study.trials:
            for key, value in t.params.items():
                assert in_space(space, key, value), f"{name}: trial {t.number} proposed {key}={value!r} outside the space"

    study, interrupted = _run(name, storage, "resume", single, seed=3, n_trials=N_TRIALS, interrupt_at=3)
    assert interrupted and n_finished(study) == 2, f"{name}: a Ctrl-C did not stop the study after two trials"
    study, interrupted = _run(name, storage, "resume", single, seed=3, n_trials=N_TRIALS)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    numbers = [t.number for t in done]
    assert not interrupted and len(numbers) == N_TRIALS == len(set(numbers)), f"{name}: did not resume to its total"
    # the resumed study continues its sequence (it does not replay it from the start): no
    # candidate twice, and, where the strategy promises it, the candidates of the uninterrupted "a"
    assert len({str(sorted(t.params.items())) for t in done}) == len(done), f"{name}: resuming replayed candidates"
    if get_strategy(name).exact_resume:
        assert [t.params for t in done] == params[0], f"{name}: resuming changed the sequence"

    multi = ("accuracy", "macs")
    if get_strategy(name).multi_objective:
        study, _ = _run(name, storage, "multi", multi, seed=6, n_trials=N_TRIALS)
        assert n_finished(study) == N_TRIALS and all(len(t.values) == 2 for t in study.trials)
        multi_objective = "works"
    else:
        try:
            _run(name, storage, "multi", multi, seed=6, n_trials=N_TRIALS)
        except ConfigError as e:
            assert "single objective" in str(e), f"{name}: refused several objectives without saying why: {e}"
            multi_objective = "refused"
        else:
            raise AssertionError(f"{name} claims one objective but ran several")

    ctx, n_workers = worker_context(), 2
    objectives = multi if get_strategy(name).multi_objective else single
    workers = [ctx.Process(target=_worker, args=(name, storage, "workers", objectives, 10 + k, N_TRIALS))
               for k in range(n_workers)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in workers), f"{name}: a worker failed ({[p.exitcode for p in workers]})"
    study, _ = _run(name, storage, "workers", objectives, seed=12, n_trials=N_TRIALS)
    numbers = [t.number for t in study.trials if t.state.is_finished()]
    assert N_TRIALS <= len(numbers) <= N_TRIALS + n_workers - 1 and len(set(numbers)) == len(numbers), (
        f"{name}: {n_workers} workers finished {len(numbers)} trials for a total of {N_TRIALS}")
    return {"determinism": True, "in_space": True, "resume": True, "multi_objective": multi_objective,
            "workers": n_workers}
