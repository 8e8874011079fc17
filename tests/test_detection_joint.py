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
from test_detection_search import reported_and_exported_by_map
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

    sess = reported_and_exported_by_map(run, tmp_path / "runs", tmp_path / "best.onnx")
    model = slimnas.load(run, best="")
    assert isinstance(model, DetectorModel)
    assert sum(p.numel() for p in model.parameters()) < max(m["parent_params"] for m in stored)  # pruned
    with torch.no_grad():
        eager = model.eval()(torch.from_numpy(x_test)).numpy()
    expected, got = aligned_detections(eager, packed(sess, x_test))
    assert (expected[..., 4] > 0).any() and np.abs(expected - got).max() < 1e-3


def test_the_centernet_supernet_runs_each_sub_network_as_its_extracted_detector():
    """Outputs and MACs of the extracted plain detector are the supernet's at that sub-network,
    and sorting the channels leaves the largest one's answer as it was."""
    from slimnas.measure import count_macs
    from slimnas.spaces import SearchSpace, get_family

    space = SearchSpace.from_config({"family": ["centernet"], "centernet": {
        "n_stages": [1, 2], "width": [8, 12], "blocks": [1, 2], "stem": 8, "head": 8, "kernel": [3, 5], "k": 10}})
    net = get_family("centernet").supernet(space.params["centernet"], (3, 32, 32), 4, fixed={"blocks": [1, 2]})
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    net.train()(x)  # batch-norm statistics of their own
    net.eval()
    before = net(x)
    net.sort_channels()
    assert torch.allclose(net(x), before, atol=1e-5)
    rng = np.random.default_rng(0)
    for spec in [net.smallest(), net.largest(), *(net.sample(rng) for _ in range(3))]:
        plain = net.extract(spec)
        assert isinstance(plain, DetectorModel) and [s.blocks for s in spec.stages] == [1, 2][: len(spec.stages)]
        assert torch.equal(net.set_active(spec)(x), plain(x))
        assert net.macs(spec) == count_macs(plain, (3, 32, 32))
        names = dict(plain.named_modules())
        assert all(n in names for group in net.layer_groups(spec) for n in group)


def test_a_supernet_search_of_detectors_predicts_and_ranks_by_map(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({
        "data": DATA, "seed": 0, "training": {**TRAINING, "epochs": 1},
        "space": {"centernet": {**SPACE["centernet"], "n_stages": [1, 2], "kernel": [3, 5]}},
        "strategy": {"name": "supernet", "options": {"precision": ["fp32", "int8"], "int8_checks": 1, "epochs": 4,
                                                     "n_pairs": 10, "search_trials": 24, "population_size": 8,
                                                     "n_candidates": 2, "max_candidates": 2, "finetune_epochs": 1}}}))
    run = tmp_path / "run"
    res = slimnas.search(tmp_path / "s.yaml", n_trials=2, out=str(run))
    report = json.loads((run / "supernet" / "report.json").read_text())
    assert report["predictor"]["metric"] == "map50" and report["predictor"]["direction"] == "maximize"
    pairs = json.loads(next((run / "supernet").glob("pairs-*.json")).read_text())
    assert all(0 <= p["val_map50"] <= 1 and "val_map50_95" in p and "val_accuracy" not in p for p in pairs)
    assert max(p["val_map50"] for p in pairs) > 0  # the sub-networks find objects with inherited weights
    ckpt = torch.load(next((run / "supernet").glob("centernet-*.pt")), weights_only=True)["model"]
    assert ckpt["heat.1.out.weight"].shape[0] == 4 and ckpt["sides.2.out.weight"].shape[0] == 4  # heads whole
    checks = report["int8_check"]  # int8 sub-networks simulated as ONNX Runtime detects with them
    assert checks and all(c["simulated"] == pytest.approx(c["onnxruntime"], abs=0.02) for c in checks), checks
    candidates = report["candidates"]
    front = sorted((c["predicted"]["macs"], c["predicted"]["val_map50"]) for c in candidates)
    assert len(front) == 2 and front[0][1] < front[1][1]  # a higher mAP costs more MACs (maximised)
    for t in res.study.trials:  # the candidates, fine-tuned from inherited weights, scored by mAP
        m = t.user_attrs["metrics"]
        assert m["supernet_candidate"] == t.number and 0 <= m["inherited_val_map50"] <= 1 and 0 <= m["val_map50"] <= 1
        assert m["predicted_val_map50"] == candidates[t.number]["predicted"]["val_map50"]
        assert t.user_attrs["candidate"]["arch"] == candidates[t.number]["spec"]
        assert not [k for k in m if "accuracy" in k]

    onnx = tmp_path / "best.onnx"
    r = CliRunner().invoke(build_app(), ["export", str(run), "--best", "", "--out", str(onnx)])
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["boxes", "scores", "labels"]
    x_test = load_dataset("boxes64", options=DATA["options"]).x_test.numpy()
    with torch.no_grad():
        eager = slimnas.load(run, best="").eval()(torch.from_numpy(x_test)).numpy()
    expected, got = aligned_detections(eager, packed(sess, x_test))
    assert (expected[..., 4] > 0).any() and np.abs(expected - got).max() < 1e-3
