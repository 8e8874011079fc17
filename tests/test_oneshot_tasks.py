"""One-shot strategies on other tasks than classification: the supernet (its training, measured
pairs, predictor, predicted front and warm-started trials) and DARTS search a regression by its
own loss and metric, a lower-is-better MSE ranked the right way round, every figure in the
targets' units, the best trial chosen by the metric's direction and its file run in ONNX Runtime;
per-token tasks and detection are refused in one line."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import optuna
import pytest
import torch
import yaml
from test_search_tasks import USER_TASK

import slimnas
from slimnas.cli import main
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.strategies import stored_result
from slimnas.strategies._darts import STATE_KEY
from slimnas.strategies._subnets import choose
from slimnas.strategies._supernet import stored_candidates
from slimnas.study import SearchPlan
from slimnas.study._export import export_run
from slimnas.study._load import open_model
from slimnas.tasks._run import task_from_record

MLP = {"family": ["mlp"], "mlp": {"n_layers": [1, 2], "width": [8, 16]}}
CNN = {"family": ["cnn"], "cnn": {"n_layers": {"low": 1, "high": 2}, "channels": [4, 8], "kernel": [3]}}
SUPERNET = {"epochs": 3, "n_pairs": 16, "search_trials": 40, "population_size": 8, "n_candidates": 2,
            "max_candidates": 2, "finetune_epochs": 1}
DARTS = {"warmup_epochs": 1, "search_epochs": 1, "penalty_weights": [0.0, 1.0]}


def write_config(tmp_path, strategy: str, options: dict, space: dict, *, dataset: str = "diabetes",
                 objectives=("mse", "macs"), **extra) -> str:
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": dataset}, "space": space,
                                    "training": {"epochs": 2, "lr": 0.01, "optimizer": "adam"},
                                    "strategy": {"name": strategy, "options": options}, **extra}
                                   | ({"objectives": list(objectives)} if objectives else {})))
    return str(path)


def check_best_exports(run, tmp_path) -> None:
    """``export --best`` takes the front member of the lowest validation MSE, and its file gives
    what the eager model gives, in the targets' units."""
    pareto = json.loads((run / "pareto.json").read_text())
    best = min(pareto["front"], key=lambda m: (m["metrics"]["val_mse"], m["trial"]))
    loaded = open_model(run, best="")
    assert loaded.trial == best["trial"]
    export_run(run, tmp_path / "best.onnx", format="onnx-fp32", best="")
    x = load_dataset("diabetes").x_test
    with torch.no_grad():
        eager = task_from_record(loaded.task).decode(loaded.model(x)).numpy()
    onnx = predict(tmp_path / "best.onnx", x)
    np.testing.assert_allclose(onnx, eager, rtol=1e-4, atol=1e-3)
    assert 20 < onnx.mean() < 300  # diabetes progression scores, not standardised values


def test_supernet_searches_a_regression_by_its_mse_lowest_first(tmp_path):
    result = slimnas.search(write_config(tmp_path, "supernet", SUPERNET, MLP), n_trials=2, seed=0,
                            out=str(tmp_path / "run"))
    run = result.run_dir
    done = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 2
    report = json.loads((run / "supernet" / "report.json").read_text())
    assert report["predictor"]["metric"] == "mse" and report["predictor"]["direction"] == "minimize"
    pairs = json.loads(next((run / "supernet").glob("pairs-*.json")).read_text())
    assert all("val_accuracy" not in p and p["val_mse"] > 100 and "val_r2" in p for p in pairs)  # targets' units
    candidates = stored_candidates(result.study)["candidates"]
    assert len(candidates) == 2
    for t in done:  # the candidates, fine-tuned from the supernet's weights, scored by the task
        m = t.user_attrs["metrics"]
        assert m["supernet_candidate"] == t.number and m["inherited_val_mse"] > 100
        assert m["predicted_val_mse"] == candidates[t.number]["predicted"]["val_mse"]
        assert m["val_mse"] > 100 and "val_r2" in m and not any("accuracy" in k for k in m)
    # the predicted front, cheapest first: a lower MSE costs more MACs (maximising MSE would reverse it)
    front = sorted((c["predicted"]["macs"], c["predicted"]["val_mse"]) for c in candidates)
    assert all(a[1] > b[1] for a, b in zip(front, front[1:], strict=False)), front
    check_best_exports(run, tmp_path)


def test_supernet_sizes_a_multilabel_head_and_predicts_a_budget_on_another_of_its_metrics(tmp_path):
    options = {**SUPERNET, "epochs": 1, "n_pairs": 10, "search_trials": 12, "max_candidates": 1, "n_candidates": 1}
    result = slimnas.search(write_config(tmp_path, "supernet", options, MLP, dataset="digits-multilabel",
                                         objectives=("mean_ap", "macs"), budget=["f1>=0.01"]),
                            n_trials=1, seed=0, out=str(tmp_path / "run"))
    run = result.run_dir
    ckpt = torch.load(next((run / "supernet").glob("mlp-*.pt")), weights_only=True)["model"]
    n_labels = json.loads((run / "run.json").read_text())["n_classes"]
    assert n_labels > 1 and all(v.shape[0] == n_labels for k, v in ckpt.items() if k.startswith("heads."))
    report = json.loads((run / "supernet" / "report.json").read_text())
    assert report["predictor"]["metric"] == "mean_ap" and report["predictor"]["direction"] == "maximize"
    (candidate,) = stored_candidates(result.study)["candidates"]
    assert {"val_mean_ap", "val_f1"} <= set(candidate["predicted"])  # the budget's metric predicted too
    m = result.study.trials[0].user_attrs["metrics"]
    assert m["supernet_candidate"] == 0 and 0 < m["inherited_val_mean_ap"] <= 1 and 0 < m["val_mean_ap"] <= 1


def test_supernet_searches_a_users_task_from_a_file_by_its_own_metric(tmp_path):
    (tmp_path / "mytask.py").write_text(USER_TASK)  # Huber, minimised, on diabetes
    options = {**SUPERNET, "epochs": 1, "n_pairs": 10, "search_trials": 12, "max_candidates": 1, "n_candidates": 1}
    result = slimnas.search(write_config(tmp_path, "supernet", options, MLP, objectives=(),
                                         task=f"{tmp_path / 'mytask.py'}:build"),
                            n_trials=1, seed=0, out=str(tmp_path / "run"))
    report = json.loads((result.run_dir / "supernet" / "report.json").read_text())
    assert report["predictor"]["metric"] == "huber" and report["predictor"]["direction"] == "minimize"
    m = result.study.trials[0].user_attrs["metrics"]
    assert {"inherited_val_huber", "predicted_val_huber", "val_huber"} <= set(m)


def test_candidates_of_each_depth_are_the_lowest_predicted_mse_where_mse_is_minimised():
    from slimnas.strategies._subnets import Point

    def point(depth, mse, macs):
        return Point("mlp", depth, ("fp32",) * (depth + 1)), {"val_mse": mse, "macs": macs}

    # depth 2 is off the front (dominated by depth 1); its best point is its lowest MSE, 10, not 90
    points = [point(1, 5.0, 10), point(1, 50.0, 5), point(2, 10.0, 40), point(2, 90.0, 30)]
    chosen = choose(points, ("mse", "macs"), 2, limit=3, per_depth=True, quality="mse")
    assert chosen[0][1]["val_mse"] == 10.0


def test_darts_searches_a_regression_by_its_own_loss_and_metric(tmp_path):
    result = slimnas.search(write_config(tmp_path, "darts", DARTS, CNN), n_trials=2, seed=0, out=str(tmp_path / "run"))
    stored = stored_result(result.study, STATE_KEY)
    assert len(stored["runs"]) == 2
    for r in stored["runs"]:  # the supernet scored by the task's primary metric, not accuracy
        assert "supernet_val_r2" in r and "supernet_val_accuracy" not in r and r["supernet_val_r2"] <= 1.0
    done = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 2 and all(t.user_attrs["metrics"]["val_mse"] > 100 for t in done)
    assert done[0].system_attrs["slimnas:darts"]["proposal"] == 0
    check_best_exports(result.run_dir, tmp_path)


@pytest.mark.parametrize("dataset, strategy", [("pysource-tags", "supernet"), ("pysource", "darts")])
def test_one_shot_strategies_refuse_a_per_token_task_in_one_line(tmp_path, dataset, strategy):
    cfg = write_config(tmp_path, strategy, {}, {"family": ["cnn"]}, dataset=dataset, objectives=())
    with pytest.raises(ConfigError, match=r"^strategy.name: expected a strategy that trains each candidate for the "
                                          r"(tokens|lm) task \(the supernet and darts have no per-token supernet"):
        SearchPlan.load(cfg, out=str(tmp_path / "x"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["search", cfg, "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and "no per-token supernet" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_one_shot_strategies_refuse_detection_and_regression_folds_in_one_line(tmp_path):
    cfg = write_config(tmp_path, "supernet", {}, {"family": ["cnn"]}, dataset="boxes64", objectives=())
    with pytest.raises(ConfigError, match=r"^strategy.name: expected a strategy that trains each candidate for the "
                                          r"detection task \(the supernet and darts have no detector supernet\)"):
        SearchPlan.load(cfg, out=str(tmp_path / "x"))
    cfg = write_config(tmp_path, "supernet", {**SUPERNET, "holdout_folds": 2}, MLP)
    with pytest.raises(ConfigError, match=r"^strategy.options.holdout_folds: expected 1 for the regression task"):
        slimnas.search(cfg, n_trials=1, seed=0, out=str(tmp_path / "run"))
