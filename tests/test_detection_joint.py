"""Detection with the parts of a search that were classification's: compression genes on the
centernet family (each candidate trained, pruned with its heads whole, int8, fine-tuned on the
detector's losses and scored by mAP@0.5 in ONNX Runtime), the front, report, per-layer table,
``slimnas runs`` and ``export --best`` speaking mAP, the exported file's boxes the eager
compressed model's."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import optuna
import pytest
import torch
import yaml
from typer.testing import CliRunner

import slimnas
from slimnas.cli import build_app
from slimnas.data import load_dataset
from slimnas.models._detector import DetectorModel, aligned_detections

#: one object per image, no distractors nor noise: a tiny detector learns it in a few epochs
DATA = {"dataset": "boxes64", "options": {"n": 150, "max_objects": 1, "distractors": 0, "noise": 0.0}}
TRAINING = {"epochs": 5, "lr": 0.02, "optimizer": "adam", "batch_size": [8]}
SPACE = {"centernet": {"n_stages": 1, "width": [8, 12], "blocks": 1, "stem": 8, "head": 8, "kernel": 3, "k": 10}}


def packed(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """An exported detector's boxes, scores and labels as the eager model's ``(N, K, 6)``."""
    boxes, scores, labels = sess.run(None, {"input": x})
    return np.concatenate([boxes, scores[..., None], labels[..., None].astype(np.float32)], -1)


def test_a_detection_search_with_compression_genes_is_scored_by_map(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": DATA, "seed": 0, "training": TRAINING,
        "space": {**SPACE, "compression": {"prune": {"low": 0.25, "high": 0.5}, "precision": ["int8"],
                                           "distill": [True], "finetune_epochs": 1, "final_epochs": 2}}}))
    run = tmp_path / "runs" / "det"
    res = slimnas.search(tmp_path / "c.yaml", n_trials=2, out=str(run))
    assert res.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert [t.state for t in res.study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    stored = [json.loads(p.read_text()) for p in sorted((run / "trials").glob("*/metrics.json"))]
    for m in stored:
        assert m["macs"] < m["parent_macs"] and 0 <= m["val_map50"] <= 1 and 0 <= m["parent_val_map50"] <= 1
        assert not [k for k in m if "accuracy" in k], m
    assert max(m["parent_val_map50"] for m in stored) > 0  # the parents learnt to find objects
    assert any("search_val_map50" in m for m in stored)  # the full fine-tune kept the short one's figure
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["objectives"] == ["map50", "macs"]

    splits = load_dataset("boxes64", options=DATA["options"])
    x_test = splits.x_test.numpy()
    for member in pareto["front"]:  # the measured int8 file (calibrated on images) scores what was reported
        folder = run / "trials" / f"{member['trial']:05d}"
        sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        out = torch.from_numpy(sess.run(None, {"input": x_test})[0])
        assert splits.task.score(out, splits.y_test)["map50"] == pytest.approx(member["metrics"]["test_map50"],
                                                                                 abs=1e-6)
        layers = {d["layer"]: d for d in json.loads((folder / "policy.json").read_text())["layers"]}
        assert layers["model.heat.1"]["kept"] == 4 and layers["model.sides.1"]["kept"] == 4  # heads whole
        assert {d["precision"] for d in layers.values()} == {"int8"}
        assert all(0 <= v <= 1 for v in layers["model.backbone.0.0"]["sensitivity"].values())  # mAP, pruned alone

    cli = CliRunner()
    r = cli.invoke(build_app(), ["report", str(run)])
    assert r.exit_code == 0, r.output
    text = (run / "report.md").read_text()
    assert "mAP@0.5" in text and "accuracy" not in text
    r = cli.invoke(build_app(), ["runs", "--root", str(tmp_path / "runs")])
    assert r.exit_code == 0 and "test mAP@0.5" in " ".join(r.output.split()), r.output

    onnx = tmp_path / "best.onnx"
    r = cli.invoke(build_app(), ["export", str(run), "--best", "", "--out", str(onnx)])
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["boxes", "scores", "labels"]
    model = slimnas.load(run, best="")
    assert isinstance(model, DetectorModel)
    assert sum(p.numel() for p in model.parameters()) < max(m["parent_params"] for m in stored)  # pruned
    with torch.no_grad():
        eager = model.eval()(torch.from_numpy(x_test)).numpy()
    expected, got = aligned_detections(eager, packed(sess, x_test))
    assert (expected[..., 4] > 0).any() and np.abs(expected - got).max() < 1e-3
