"""The tokens task end to end from the command line on its built-in dataset, pysource-tags:
a search of per-token CNN and GRU candidates scored by token F1, `compress --auto` of a trial,
the report and the exported file, whose tag scores per position equal the eager model's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
import yaml

import slimnas
from slimnas.data import load_dataset
from slimnas.export import predict

DATA = {"dataset": "pysource-tags", "options": {"n": 120, "seq_len": 24}}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "slimnas", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_the_tokens_task_searches_compresses_reports_and_exports_per_token_cnn_and_rnn_models(tmp_path):
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump({
        "data": DATA, "seed": 0,
        "space": {"family": ["cnn", "rnn"], "cnn": {"n_layers": 2, "channels": [8, 16], "kernel": [3, 5],
                                                    "stride": [2], "pool": ["max"]},
                  "rnn": {"cell": ["gru"], "hidden": [8], "n_layers": 1, "bidirectional": [True]}},
        "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}))
    run = tmp_path / "run"
    r = run_cli("search", str(tmp_path / "tags.yaml"), "--n-trials", "4", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["objectives"] == ["token_f1", "macs"]
    archs = [json.loads(p.read_text())["arch"] for p in sorted((run / "trials").glob("*/arch.json"))]
    assert {a["family"] for a in archs} == {"cnn", "rnn"}  # both families, each with a per-token head
    assert all(a["per_token"] == "tokens" and a["vocab_size"] > 90 for a in archs)
    cnn = next(a for a in archs if a["family"] == "cnn")  # the head keeps the length: no stride, no pooling
    assert all(layer["stride"] == 1 and layer["pool"] == "none" for layer in cnn["layers"])
    member = pareto["front"][0]
    assert 0 < member["metrics"]["test_token_f1"] <= 1 and 0 < member["metrics"]["test_token_accuracy"] <= 1

    auto = tmp_path / "auto"
    r = run_cli("compress", "--run", str(run), "--trial", str(member["trial"]), "--auto", "--budget", "macs<=60%",
                "--n-trials", "1", "--finetune-epochs", "1", "--final-epochs", "1", "--out", str(auto), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((auto / "report.json").read_text())
    assert report["feasible"] and report["after"]["macs"] <= 0.6 * report["before"]["macs"]
    assert 0 < report["after"]["val_token_f1"] <= 1 and "test_token_f1" in report["after"]

    r = run_cli("report", str(run))
    assert r.returncode == 0, r.stderr
    assert "token F1" in (run / "report.md").read_text()

    x = load_dataset("pysource-tags", options=DATA["options"]).x_test[:5]
    for folder, args in ((run, ["--best", ""]), (auto, [])):
        r = run_cli("export", str(folder), *args, "--out", str(tmp_path / f"{folder.name}.onnx"))
        assert r.returncode == 0, r.stderr
        model = slimnas.load(folder) if folder is auto else slimnas.load(folder, best="")
        with torch.no_grad():
            eager = model(x).numpy()
        assert eager.shape == (5, 24, 10)  # a score per tag at every position
        np.testing.assert_allclose(predict(tmp_path / f"{folder.name}.onnx", x), eager, atol=1e-4)
