"""One-shot strategies on other tasks than classification: the supernet (its training, measured
pairs, predictor, predicted front and warm-started trials) and DARTS search a regression by its
own loss and metric, a lower-is-better MSE ranked the right way round, every figure in the
targets' units, the best trial chosen by the metric's direction and its file run in ONNX Runtime;
the supernet's CNN embeds token ids and predicts per token (a language model by perplexity);
DARTS searches a language model with the CNN's embedding and causal head; the supernet of other
families on a per-token task, and DARTS on detection, are refused in one line."""

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
from test_supernet import shake

import slimnas
from slimnas.cli import main
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.measure import count_macs
from slimnas.models import build_model
from slimnas.spaces import SearchSpace, get_family
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
SUPERNET = {"epochs": 2, "n_pairs": 12, "search_trials": 24, "population_size": 8, "n_candidates": 2,
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
    options = {**SUPERNET, "epochs": 1, "n_pairs": 10, "search_trials": 12, "max_candidates": 1, "n_candidates": 1,
               "finetune_epochs": 0}
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
    options = {**SUPERNET, "epochs": 1, "n_pairs": 10, "search_trials": 12, "max_candidates": 1, "n_candidates": 1,
               "finetune_epochs": 0}
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


def test_a_token_supernets_subnetworks_are_the_per_token_cnns_it_holds():
    """Token ids embedded into the first layer's width, a head per position (causal: left-padded
    convolutions) or a pooled one (text classification), channels sorted with the embedding: each
    sub-network is the family's own model with the inherited weights, its MACs counted exactly."""
    params = SearchSpace.from_config({"family": "cnn", "cnn": {"n_layers": {"low": 1, "high": 3}, "channels": [4, 8],
                                                               "kernel": [3, 5], "residual": [True]}}).params["cnn"]
    rng = np.random.default_rng(0)
    for mode, shape in [("tokens", (1, 16)), ("causal", (1, 16)), ("", (16,))]:  # "": text classification
        x = torch.randint(0, 30, (8, *shape)).float()
        torch.manual_seed(0)
        net = get_family("cnn").supernet(params, shape, 5, vocab_size=30, per_token=mode)
        shake(net, x)
        with torch.no_grad():
            before = net.set_active(net.largest())(x)
            net.sort_channels()
            assert torch.allclose(before, net(x), atol=1e-5)
        for spec in [net.largest(), net.smallest(), *(net.sample(rng) for _ in range(3))]:
            assert spec.per_token == mode and spec.vocab_size == 30
            assert all(c.stride == 1 for c in spec.layers) or not mode
            rebuilt = build_model(spec, shape, 5)
            rebuilt.load_state_dict(net.extract(spec).state_dict())
            rebuilt.eval()
            with torch.no_grad():
                out = net.set_active(spec)(x)
                assert out.shape == ((8, 16, 5) if mode else (8, 5)) and torch.allclose(out, rebuilt(x), atol=1e-5)
                if mode == "causal":  # a position reads itself and the earlier ones only
                    later = x.clone()
                    later[:, :, 10:] = (later[:, :, 10:] + 1) % 30
                    assert torch.equal(net(later)[:, :10], out[:, :10])
            assert net.macs(spec) == count_macs(rebuilt, shape)


def test_supernet_searches_a_language_model_by_perplexity_lowest_first(tmp_path):
    options = {**SUPERNET, "epochs": 2, "n_pairs": 10, "search_trials": 12, "finetune_epochs": 0}
    space = {"family": ["cnn"], "cnn": {"n_layers": [1, 2], "channels": [8, 16], "kernel": [3, 5]}}
    data = {"dataset": "pysource", "options": {"n": 120, "seq_len": 24}}
    result = slimnas.search(write_config(tmp_path, "supernet", options, space, dataset="pysource", objectives=(),
                                         data=data), n_trials=2, seed=0, out=str(tmp_path / "run"))
    run = result.run_dir
    report = json.loads((run / "supernet" / "report.json").read_text())
    assert report["predictor"]["metric"] == "perplexity" and report["predictor"]["direction"] == "minimize"
    candidates = stored_candidates(result.study)["candidates"]
    front = sorted((c["predicted"]["macs"], c["predicted"]["val_perplexity"]) for c in candidates)
    assert all(a[1] > b[1] for a, b in zip(front, front[1:], strict=False)), front  # more MACs, lower perplexity
    for t in result.study.trials:
        m = t.user_attrs["metrics"]
        assert m["supernet_candidate"] == t.number and 1 < m["inherited_val_perplexity"] and 1 < m["val_perplexity"]
        arch = t.user_attrs["candidate"]["arch"]
        assert arch["per_token"] == "causal" and arch["vocab_size"] > 90
    best = min(json.loads((run / "pareto.json").read_text())["front"], key=lambda m: m["metrics"]["val_perplexity"])
    loaded = open_model(run, best="")
    assert loaded.trial == best["trial"]
    x = load_dataset(slimnas.config.DataConfig(**data)).x_val[:8]
    with torch.no_grad():
        eager = loaded.model(x).numpy()
    np.testing.assert_allclose(predict(run / "trials" / f"{loaded.trial:05d}" / "model.onnx", x), eager, atol=1e-4)


def test_darts_searches_a_language_model_with_the_cnns_embedding_and_causal_head(tmp_path):
    """DARTS on the lm task: the relaxed CNN embeds the ids and predicts at every position from
    the earlier ones, scored by perplexity; its proposal is the family's causal per-token CNN (a
    space's stride and pooling set aside), trained as any trial, its file equal to the eager model."""
    space = {"family": ["cnn"], "cnn": {"n_layers": [1, 2], "channels": [8], "kernel": [3, 5], "stride": [2],
                                        "pool": ["max"]}}
    data = {"dataset": "pysource", "options": {"n": 60, "seq_len": 16}}
    result = slimnas.search(write_config(tmp_path, "darts", {**DARTS, "penalty_weights": [0.0]}, space,
                                         dataset="pysource", objectives=(), data=data),
                            n_trials=1, seed=0, out=str(tmp_path / "run"))
    stored = stored_result(result.study, STATE_KEY)
    assert 1 < stored["runs"][0]["supernet_val_perplexity"] < 200
    arch = stored["proposals"][0]["arch"]
    assert arch["per_token"] == "causal" and arch["vocab_size"] > 90 and arch["head"] == "gap"
    assert all(layer["stride"] == 1 and layer["pool"] == "none" for layer in arch["layers"])
    trial = result.study.trials[0]
    assert trial.system_attrs["slimnas:darts"]["proposal"] == 0 and trial.user_attrs["candidate"]["arch"] == arch
    assert 1 < trial.user_attrs["metrics"]["val_perplexity"] < 200
    model = slimnas.load(result.run_dir, 0)
    x = load_dataset(slimnas.config.DataConfig(**data)).x_val[:4]
    later = x.clone()
    later[..., 10:] = (later[..., 10:] + 1) % 90
    with torch.no_grad():
        y = model(x)
        assert y.shape[:2] == (4, 16) and torch.equal(model(later)[:, :10], y[:, :10])
    np.testing.assert_allclose(predict(result.run_dir / "trials" / "00000" / "model.onnx", x), y.numpy(), atol=1e-4)


def test_the_supernet_of_other_families_refuses_a_per_token_task_in_one_line(tmp_path):
    cfg = write_config(tmp_path, "supernet", {}, {"family": ["cnn", "rnn"]}, dataset="pysource-tags", objectives=())
    with pytest.raises(ConfigError, match=r"^space.family: expected cnn for the supernet strategy on the tokens task"):
        SearchPlan.load(cfg, out=str(tmp_path / "x"))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["search", cfg, "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and "expected cnn for the supernet strategy" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_one_shot_strategies_refuse_detection_and_regression_folds_in_one_line(tmp_path):
    cfg = write_config(tmp_path, "darts", {}, {"family": ["centernet"]}, dataset="boxes64", objectives=())
    with pytest.raises(ConfigError, match=r"^strategy.name: expected supernet or a strategy that trains each candidate "
                                          r"for the detection task \(darts relaxes a classifier's CNN: no heatmap, "
                                          r"box-sides heads nor top-K detections\), got 'darts'$"):
        SearchPlan.load(cfg, out=str(tmp_path / "x"))
    cfg = write_config(tmp_path, "supernet", {**SUPERNET, "holdout_folds": 2}, MLP)
    with pytest.raises(ConfigError, match=r"^strategy.options.holdout_folds: expected 1 for the regression task"):
        slimnas.search(cfg, n_trials=1, seed=0, out=str(tmp_path / "run"))
