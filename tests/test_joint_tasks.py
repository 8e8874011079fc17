"""Compression genes in searches of other tasks than classification: a regression on diabetes and
a language model on pysource, each trial's parent trained, compressed, fine-tuned on the task's
loss and scored by the task's primary metric in its direction (R² up, perplexity down), the
parents and the full fine-tune's search figures stored under that metric, and the exported best
file scoring in ONNX Runtime what its trial reported."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch
import yaml

import slimnas
from slimnas.data import load_dataset
from slimnas.export import predict
from slimnas.study._export import export_run
from slimnas.study._load import open_model

TRAINING = {"epochs": 1, "lr": 0.01, "optimizer": "adam"}


def search(tmp_path, data: dict, space: dict, genes: dict):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": data, "seed": 0, "training": TRAINING,
        "space": {**space, "compression": {"prune": {"low": 0.25, "high": 0.5}, "finetune_epochs": 1,
                                           "final_epochs": 2, **genes}}}))
    return slimnas.search(tmp_path / "c.yaml", n_trials=2, out=str(tmp_path / "run"))


def check_trials(res, key: str) -> list[dict]:
    """Every trial complete and compressed, scored by ``key`` (``val_r2``) with its parent's
    ``parent_<key>``; nothing under accuracy's name."""
    trials = res.study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    stored = [json.loads((res.run_dir / "trials" / f"{t.number:05d}" / "metrics.json").read_text()) for t in trials]
    for m in stored:
        assert m["macs"] < m["parent_macs"] and np.isfinite(m[key]) and np.isfinite(m[f"parent_{key}"])
        assert not [k for k in m if "accuracy" in k], m
    assert any(f"search_{key}" in m for m in stored)  # the full fine-tune kept the short one's figure
    return stored


def test_a_regression_search_with_compression_genes_is_scored_by_r2(tmp_path):
    res = search(tmp_path, {"dataset": "diabetes"}, {"family": ["mlp"], "mlp": {"n_layers": 1, "width": [16, 32]}},
                 {"precision": ["fp32"], "distill": [True]})
    assert res.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    check_trials(res, "val_r2")
    pareto = json.loads((res.run_dir / "pareto.json").read_text())
    assert pareto["objectives"] == ["r2", "macs"]

    export_run(res.run_dir, tmp_path / "m.onnx", format="onnx-fp32", best="")
    trial = open_model(res.run_dir, best="").trial
    member = next(m for m in pareto["front"] if m["trial"] == trial)
    splits = load_dataset("diabetes")
    values = predict(tmp_path / "m.onnx", splits.x_test)[:, 0]  # in the targets' units
    y = splits.task.decode(splits.y_test).numpy()[:, 0]
    r2 = 1 - ((y - values) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert r2 == pytest.approx(member["metrics"]["test_r2"], abs=1e-4)

    from slimnas.report._report import write_report

    data = write_report(res.run_dir).data
    assert data["baselines"] and all("val_r2" in b["metrics"] for b in data["baselines"])
    assert data["cards"][0]["sensitivity_metric"] == "R²"
    assert "Sensitivity (validation R² " in (res.run_dir / "report.md").read_text()


def test_a_language_model_search_with_int8_genes_is_scored_by_perplexity(tmp_path):
    data = {"dataset": "pysource", "options": {"n": 60, "seq_len": 16}}
    res = search(tmp_path, data, {"family": ["cnn"], "cnn": {"n_layers": 1, "channels": [8, 16], "kernel": [3]}},
                 {"precision": ["int8"], "lowrank": [0.5, 1.0]})
    assert res.study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    stored = check_trials(res, "val_perplexity")
    assert all(1 < m["val_perplexity"] < 200 for m in stored)
    splits = load_dataset("pysource", options=data["options"])
    pareto = json.loads((res.run_dir / "pareto.json").read_text())
    assert pareto["objectives"] == ["perplexity", "macs"]
    for member in pareto["front"]:  # the deployed int8 file (calibrated on token ids) scores what was reported
        logits = predict(res.run_dir / "trials" / f"{member['trial']:05d}" / "model.onnx", splits.x_test)
        ppl = splits.task.score(torch.from_numpy(logits), splits.y_test)["perplexity"]
        assert ppl == pytest.approx(member["metrics"]["test_perplexity"], rel=1e-4)

    export_run(res.run_dir, tmp_path / "m.onnx", format="onnx-fp32", best="")
    loaded = open_model(res.run_dir, best="")
    with torch.no_grad():
        eager = loaded.model(splits.x_test).numpy()
    exported = predict(tmp_path / "m.onnx", splits.x_test)
    np.testing.assert_allclose(exported, eager, atol=1e-4)
    reported = next(m for m in pareto["front"] if m["trial"] == loaded.trial)["metrics"]["test_perplexity"]
    assert splits.task.score(torch.from_numpy(exported), splits.y_test)["perplexity"] == pytest.approx(reported, rel=0.05)


def test_a_task_without_a_distillation_term_says_so_once(tmp_path):
    from slimnas.study._plan import SearchPlan
    from slimnas.study._task import compression_notes
    from slimnas.tasks import Regression

    class OwnLosses(Regression):
        name = "own"
        distills = False

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"space": {"family": ["mlp"], "compression": {"distill": [True]}}}))
    plan = SearchPlan.load(tmp_path / "c.yaml", dataset="diabetes", out=str(tmp_path / "x"))
    assert compression_notes(plan, OwnLosses()) == ["the own task has no distillation term: the fine-tunes minimise "
                                                    "the model's own losses"]
    assert compression_notes(plan, plan.task) == []  # regression distils on the teacher's values
