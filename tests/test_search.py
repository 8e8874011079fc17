"""End-to-end tiny searches through the CLI and the API, on real data and a real SQLite study."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml

import slimnas
from slimnas.strategies._samplers import ParallelSafeGPSampler
from slimnas.study import RunFolder


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "slimnas", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_search_writes_the_run_folder(tmp_path, tiny_config):
    out = tmp_path / "run"
    r = run_cli("search", str(tiny_config()), "--n-trials", "3", "--seed", "0", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "Pareto front" in r.stdout
    assert (out / "config.yaml").is_file() and (out / "study.db").is_file()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["n_trials"] == 3 and saved["data"]["dataset"] == "digits"
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["accuracy", "macs"] and pareto["front"]
    for member in pareto["front"]:
        assert {"val_accuracy", "test_accuracy", "params", "macs", "bytes"} <= set(member["metrics"])
        d = out / "trials" / f"{member['trial']:05d}"
        assert {"arch.json", "metrics.json", "weights.pt", "model.onnx"} <= {p.name for p in d.iterdir()}
        assert member["metrics"]["bytes"] == (d / "model.onnx").stat().st_size
    # the front is non-dominated: no member is better-or-equal on both objectives than another
    pts = [(m["metrics"]["val_accuracy"], m["metrics"]["macs"]) for m in pareto["front"]]
    for a in pts:
        assert not any(b != a and b[0] >= a[0] and b[1] <= a[1] for b in pts)


def test_resume_runs_only_missing_trials(tmp_path, tiny_config):
    cfg = tiny_config()
    first = slimnas.search(cfg, n_trials=2, out=str(tmp_path / "r"))
    metrics_before = {t.number: t.user_attrs["metrics"]["seconds"] for t in first.study.trials}
    mtimes = {n: (RunFolder(first.run_dir).trial_dir(n) / "weights.pt").stat().st_mtime_ns for n in metrics_before}
    second = slimnas.search(cfg, n_trials=4, out=str(tmp_path / "r"))
    trials = second.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.number for t in trials] == [0, 1, 2, 3]
    for n, secs in metrics_before.items():  # finished trials were not retrained
        assert trials[n].user_attrs["metrics"]["seconds"] == secs
        assert (RunFolder(second.run_dir).trial_dir(n) / "weights.pt").stat().st_mtime_ns == mtimes[n]
    third = slimnas.search(cfg, n_trials=4, out=str(tmp_path / "r"))
    assert len(third.study.trials) == 4


def test_same_seed_same_trials_and_front(tmp_path, tiny_config):
    cfg = tiny_config()
    a = slimnas.search(cfg, n_trials=3, seed=5, out=str(tmp_path / "a"))
    b = slimnas.search(cfg, n_trials=3, seed=5, out=str(tmp_path / "b"))
    assert [t.params for t in a.study.trials] == [t.params for t in b.study.trials]
    key = lambda r: [(m.trial, m.metrics["val_accuracy"], m.metrics["test_accuracy"]) for m in r.front]  # noqa: E731
    assert key(a) == key(b)


def test_budget_filters_the_front(tmp_path, tiny_config):
    r = slimnas.search(tiny_config(), n_trials=6, seed=1, budget=["macs<=600"], out=str(tmp_path / "b"))
    macs = [t.user_attrs["metrics"]["macs"] for t in r.study.trials]
    assert any(m > 600 for m in macs), "the tiny space should propose some over-budget models"
    assert all(m.metrics["macs"] <= 600 for m in r.front)
    over = [t for t in r.study.trials if t.user_attrs["metrics"]["macs"] > 600]
    assert all(t.user_attrs["metrics"]["trained"] is False for t in over)  # measured, not trained
    assert all(t.user_attrs["constraints"][0] > 0 for t in over)


def test_no_model_fits_reports_the_closest(tmp_path, tiny_config, cli_here):
    # skip_infeasible off: the candidates over the budget are trained (a skipped one is never "closest")
    r = cli_here("search", str(tiny_config(skip_infeasible=False)), "--n-trials", "2", "--budget", "params<=5", "--out",
                str(tmp_path / "n"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "No model meets the budget" in r.stdout
    pareto = json.loads((tmp_path / "n" / "pareto.json").read_text())
    assert pareto["feasible"] is False and pareto["front"] == [] and len(pareto["closest"]) == 2


SAMPLERS = {"random": optuna.samplers.RandomSampler, "grid": optuna.samplers.GridSampler,
            "tpe": optuna.samplers.TPESampler, "bohb": optuna.samplers.TPESampler,
            "gp": ParallelSafeGPSampler, "nsga2": optuna.samplers.NSGAIISampler}


@pytest.mark.parametrize("strategy", list(SAMPLERS))
def test_every_strategy_runs_its_own_algorithm(tmp_path, tiny_config, strategy):
    extra = {}
    if strategy == "grid":  # grid needs a small, discrete space
        extra = {"space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}},
                 "training": {"epochs": 1, "lr": [0.01], "optimizer": "adam"}}
    r = slimnas.search(tiny_config(**extra), n_trials=3, strategy=strategy, out=str(tmp_path / strategy))
    sampler = getattr(r.study.sampler, "base", r.study.sampler)
    assert type(sampler) is SAMPLERS[strategy]  # not random sampling under another name
    pruner = optuna.pruners.HyperbandPruner if strategy == "bohb" else optuna.pruners.NopPruner
    assert type(r.study.pruner) is pruner or len(r.plan.objectives) > 1
    assert r.plan.early_stopping == ("hyperband" if strategy == "bohb" else "none")
    done = r.study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert len(done) == (2 if strategy == "grid" else 3) and r.front
    if strategy == "grid":  # the grid is enumerated: both widths, each once
        assert sorted(t.params["mlp.width"] for t in done) == [8, 16]


def test_single_objective_cmaes_and_fitness(tmp_path, tiny_config):
    r = slimnas.search(tiny_config(fitness={"cost": "macs", "weight": 1e-4}), objectives="fitness",
                       strategy="cmaes", n_trials=3, out=str(tmp_path / "f"))
    best = r.study.best_trial
    m = best.user_attrs["metrics"]
    assert best.value == pytest.approx(m["val_loss"] + 1e-4 * m["macs"])
    assert [x.trial for x in r.front] == [best.number]


def test_multi_objective_early_stopping_prunes(tmp_path, tiny_config):
    cfg = tiny_config(strategy={"name": "random", "early_stopping": "median", "n_startup_trials": 2})
    r = slimnas.search(cfg, n_trials=12, epochs=4, seed=0, out=str(tmp_path / "p"))
    states = [t.state for t in r.study.trials]
    assert optuna.trial.TrialState.PRUNED in states
    pruned = [t for t in r.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(len(t.user_attrs["curve"]) < 4 for t in pruned)
    assert all(m.trial not in {t.number for t in pruned} for m in r.front)


@pytest.mark.parametrize(
    "args, field",
    [
        (["--dataset", "imagenet"], "data.dataset"),
        (["--strategy", "annealing"], "strategy.name"),
        (["--objectives", "accuracy,speed"], "objectives"),
        (["--budget", "macs<<3"], "budget"),
        (["--n-trials", "0"], "n_trials"),
    ],
)
def test_bad_input_exits_2_with_the_field(tmp_path, args, field, cli_here):
    r = cli_here("search", "--out", str(tmp_path / "x"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.stderr
    assert "Traceback" not in r.stderr


def test_bad_yaml_exits_2(tmp_path, cli_here):
    p = tmp_path / "c.yaml"
    p.write_text("space:\n  family: [cnn\n")
    r = run_cli("search", str(p), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.startswith("error: config: expected valid YAML")
    r = cli_here("search", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "existing YAML file" in r.stderr


def test_changed_objectives_on_resume_is_an_error_and_keeps_trials(tmp_path, tiny_config, cli_here):
    cfg = tiny_config()
    slimnas.search(cfg, n_trials=1, out=str(tmp_path / "r"))
    r = cli_here("search", str(cfg), "--n-trials", "2", "--out", str(tmp_path / "r"), "--objectives", "accuracy,params")
    assert r.returncode == 2 and r.stderr.startswith("error: objectives:")
    assert (tmp_path / "r" / "trials" / "00000" / "weights.pt").is_file()


def test_ctrl_c_keeps_completed_trials_and_resumes(tmp_path, tiny_config):
    import signal
    import time

    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "slimnas", "search", str(tiny_config()), "--n-trials", "200", "--epochs", "3",
           "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "trials" / "00002" / "metrics.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stdout and "Traceback" not in stderr
    pareto = json.loads((out / "pareto.json").read_text())
    study = optuna.load_study(study_name="digits-tpe", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 3 and pareto["n_trials"] == len(complete)
    assert {m["trial"] for m in pareto["front"]} <= set(complete)
    resumed = slimnas.search(tiny_config(), n_trials=len(complete) + 1, epochs=3, out=str(out))
    now = [t.number for t in resumed.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert now[: len(complete)] == complete and len(now) == len(complete) + 1


def test_recurrent_family_with_latency_objective_on_a_csv_file(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    y = (x[:, :6].sum(1) > 0).astype(int)
    lines = [",".join([f"f{i}" for i in range(12)] + ["label"])]
    lines += [",".join([f"{v:.4f}" for v in row] + [str(t)]) for row, t in zip(x, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    cfg = {"data": {"dataset": str(tmp_path / "d.csv")}, "objectives": ["accuracy", "latency"],
           "budget": ["latency_ms<=1000"], "measure": {"latency_repeats": 5},
           "space": {"family": "rnn", "rnn": {"hidden": [4, 8], "n_layers": 1}},
           "training": {"epochs": 1}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = slimnas.search(tmp_path / "c.yaml", n_trials=2, out=str(tmp_path / "r"))
    assert r.front
    for m in r.front:
        assert m.candidate["arch"]["family"] == "rnn" and m.metrics["latency_ms"] > 0


def test_two_workers_share_one_study(tmp_path, tiny_config):
    r = slimnas.search(tiny_config(), n_trials=6, workers=2, out=str(tmp_path / "w"))
    done = r.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert 6 <= len(done) <= 7  # the cap is checked after each trial, so a worker may finish one more
    assert len({t.number for t in done}) == len(done)
    assert all((tmp_path / "w" / "trials" / f"{t.number:05d}" / "metrics.json").is_file() for t in done)
    assert json.loads((tmp_path / "w" / "pareto.json").read_text())["n_trials"] == len(done)


def test_search_on_a_device_profile_predicts_latency_from_its_table_and_remeasures_the_front(tmp_path, tiny_config,
                                                                                             cli_here):
    """The user's steps: a profile measured with ``slimnas device profile`` on the search's space,
    then ``slimnas search --device-profile``: each trial's latency is the table's prediction for
    its model (known before training: over the budget, not trained), and the front is timed here."""
    from slimnas.config._profile import read_profile
    from slimnas.data import load_dataset
    from slimnas.measure import profile_predictor
    from slimnas.models import build_model
    from slimnas.spaces._spec import Candidate

    config = tiny_config()
    prof = tmp_path / "edge.yaml"
    r = cli_here("device", "profile", "--config", str(config), "--precision", "fp32", "--repeats", "5", "--n-calibration", "3",
                "--n-check", "3", "--out", str(prof))
    assert r.returncode == 0, r.stderr
    limit = 0.008
    out = tmp_path / "run"
    r = cli_here("search", str(config), "--device-profile", str(prof), "--objectives", "accuracy,latency_ms",
                "--budget", f"latency_ms<={limit}", "--n-trials", "6", "--seed", "0", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    predictor = profile_predictor(read_profile(prof))
    shape = load_dataset("digits").input_shape
    run = RunFolder(out)
    numbers = sorted(int(d.name) for d in (out / "trials").iterdir())
    assert len(numbers) == 6
    for n in numbers:
        m = run.read_metrics(n)
        info = m["latency_ms_info"]
        assert info["source"] == "predicted" and info["profile"] == "edge" and info["batch"] == 1
        arch = Candidate.from_dict(json.loads((out / "trials" / f"{n:05d}" / "arch.json").read_text())).arch
        model = build_model(arch, shape, 10)
        assert m["latency_ms"] == pytest.approx(predictor.predict(model, shape, batch=1).ms, rel=1e-6)
        assert m["trained"] == (m["latency_ms"] <= limit)  # predicted before training: over it, skipped
        if not m["trained"]:  # nothing kept that could pass for a trained model
            assert m["state"] == "skipped" and "val_accuracy" not in m
            assert not (out / "trials" / f"{n:05d}" / "weights.pt").exists()
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front
    for member in front:
        assert member["metrics"]["latency_ms"] <= limit
        measured = member["metrics"]["measured_latency_ms_info"]
        assert member["metrics"]["measured_latency_ms"] > 0 and measured["runtime"] == "onnxruntime"
        assert measured["threads"] == 1 and measured["batch"] == 1


def test_a_trial_trains_alike_whichever_worker_takes_it(tmp_path):
    """Training is seeded by the run's seed and the trial's place, not by the worker (whose
    sampler seed is the run's plus its index): which worker takes a trial is a race, and it
    must not change what the trial trains to."""
    import multiprocessing
    import os

    import torch

    from slimnas.study._search import _worker

    cfg = {"data": {"dataset": "digits"}, "strategy": {"name": "random"},
           "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": 16}},  # one candidate: only the seed differs
           "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    slimnas.search(path, n_trials=3, seed=3, out=str(tmp_path / "alone"))
    shared = slimnas.search(path, n_trials=2, seed=3, out=str(tmp_path / "shared"))
    _worker({**shared.plan.to_dict(), "n_trials": 3}, 1, os.getppid(), multiprocessing.get_context("spawn").Queue())

    def weights(run, number):
        return torch.load(tmp_path / run / "trials" / f"{number:05d}" / "weights.pt", weights_only=True)

    by_worker, by_main, before = weights("shared", 2), weights("alone", 2), weights("alone", 1)
    assert all(torch.equal(by_worker[k], by_main[k]) for k in by_main)
    assert any(not torch.equal(before[k], by_main[k]) for k in by_main)  # the seed does reach the weights


def test_trials_skipped_before_training_keep_no_model_and_are_never_taken_for_trained(tmp_path, tiny_config):
    """The report: candidates over a budget known before training were stored with random-init
    weights and val_accuracy 0.098; a run that skipped all of them printed "(4 complete trials)",
    test-evaluated the random models as the closest, and `export --trial` exported one."""
    from rich.console import Console

    from slimnas.errors import ConfigError
    from slimnas.report._runs import runs_table
    from slimnas.report._table import print_front
    from slimnas.study import list_runs
    from slimnas.study._export import export_run

    out = tmp_path / "runs" / "s"
    r = slimnas.search(tiny_config(), budget=["params<=10"], n_trials=3, out=str(out))
    console = Console(record=True, width=200)
    print_front(r, console)
    flat = " ".join(console.export_text().split())
    assert "No trial was trained (3 skipped before training" in flat and "complete trial" not in flat, flat
    assert [t.user_attrs.get("skipped") for t in r.study.trials] == [True] * 3 and not r.closest
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["skipped"] == [0, 1, 2] and pareto["front"] == [] and pareto["closest"] == []
    for n in range(3):
        folder = out / "trials" / f"{n:05d}"
        m = json.loads((folder / "metrics.json").read_text())
        assert m["state"] == "skipped" and "params<=10" in m["skipped"] and m["params"] > 10
        assert "val_accuracy" not in m and "test_accuracy" not in m
        assert not (folder / "weights.pt").exists() and not (folder / "model.onnx").exists()
    with pytest.raises(ConfigError, match="trial 1 was skipped before training"):
        export_run(out, tmp_path / "m.onnx", format="onnx-fp32", trial=1)
    assert not (tmp_path / "m.onnx").exists()
    console = Console(record=True, width=300)
    console.print(runs_table(list_runs(tmp_path / "runs"), "runs"))
    listed = " ".join(console.export_text().split())
    assert "3/3 (3 skipped)" in listed and "none trained" in listed, listed
