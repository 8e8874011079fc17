"""The defects a new user met, each with a test of the behaviour that replaces it: run folders
and studies never shared by two searches, bad input refused before anything is written,
nothing asked for and not done left unsaid."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import slimnas
from slimnas.cli import main
from slimnas.compress import analyze_sensitivity
from slimnas.data import load_dataset
from slimnas.errors import ConfigError

# A recurrent layer structured pruning cannot act on (bidirectional GRUs and LSTMs prune now;
# a plain tanh RNN does not), named ``gru`` as in the defects' reports.
GRU_BI = ("import torch\n"
          "class Net(torch.nn.Module):\n"
          "    def __init__(self):\n"
          "        super().__init__()\n"
          "        self.gru = torch.nn.RNN(1, 4, batch_first=True, bidirectional=True)\n"
          "        self.fc = torch.nn.Linear(8, 10)\n"
          "    def forward(self, x):\n"
          "        out, _ = self.gru(x.transpose(1, 2))\n"
          "        return self.fc(out[:, -1])\n"
          "def build():\n"
          "    return Net()\n"
          "class WithConv(Net):\n"
          "    def __init__(self):\n"
          "        super().__init__()\n"
          "        self.conv = torch.nn.Conv1d(1, 8, 5, stride=4)\n"
          "        self.fc = torch.nn.Linear(8 + 8, 10)\n"
          "    def forward(self, x):\n"
          "        out, _ = self.gru(x.transpose(1, 2))\n"
          "        features = torch.relu(self.conv(x)).mean(-1)\n"
          "        return self.fc(torch.cat([out[:, -1], features], 1))\n"
          "def build_conv():\n"
          "    return WithConv()\n"
          "def five_outputs():\n"
          "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 5))\n"
          "def sequence_outputs():\n"
          "    return torch.nn.Conv1d(1, 10, 3, padding=1)\n")


def run_cli(*args, cwd=None):
    """The command line, in this process (a subprocess costs seconds of imports per call)."""
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as e:
                code = e.code or 0
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(r, field: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}:"), r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A finished run of a tiny search, as `make demo` leaves one."""
    d = tmp_path_factory.mktemp("demo")
    cfg = {"data": {"dataset": "digits"}, "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
           "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}}}
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = run_cli("search", str(d / "c.yaml"), "--n-trials", "2", "--out", str(d / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    return d


def test_another_search_space_never_reuses_a_run_folder(demo_run, tmp_path):
    """Defect: a config without name: reused the demo's folder and study and crashed inside Optuna."""
    before = snapshot(demo_run / "run")
    other = {"data": {"dataset": "digits"}, "space": {"family": "cnn"}, "training": {"epochs": 1}}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    r = run_cli("search", str(tmp_path / "other.yaml"), "--n-trials", "3", "--out", str(demo_run / "run"))
    one_line_error(r, "space")
    assert "own --name or --out" in r.stderr
    assert snapshot(demo_run / "run") == before


def test_another_dataset_never_overwrites_a_run_folder(demo_run):
    """Defect: --out D with another dataset replaced trials/00000 and pareto.json."""
    before = snapshot(demo_run / "run")
    r = run_cli("search", "--dataset", "mnist1d", "--n-trials", "2", "--epochs", "1", "--out", str(demo_run / "run"))
    one_line_error(r, "out")
    assert "holds study 'digits-tpe'" in r.stderr
    assert snapshot(demo_run / "run") == before


def test_a_folder_of_other_files_and_bad_names_are_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("my: own\n")
    (tmp_path / "mine" / "pareto.json").write_text("{}")
    before = snapshot(tmp_path / "mine")
    one_line_error(run_cli("search", "--dataset", "digits", "--out", str(tmp_path / "mine")), "out")
    assert snapshot(tmp_path / "mine") == before
    (tmp_path / "config.yaml").write_text("mine\n")
    for name in ("..", "a/b", ".hidden", "a b"):
        one_line_error(run_cli("search", "--dataset", "digits", "--name", name, cwd=tmp_path), "name")
    assert (tmp_path / "config.yaml").read_text() == "mine\n"


@pytest.mark.parametrize("out", ["/proc/slimnas-run", "{tmp}/afile/run"])
def test_an_unwritable_out_is_one_line_and_nothing_is_left(tmp_path, out):
    (tmp_path / "afile").write_text("")
    out = out.format(tmp=tmp_path)
    r = run_cli("search", "--dataset", "digits", "--n-trials", "1", "--epochs", "1", "--out", out)
    one_line_error(r, "out")
    assert not Path(out).exists()


@pytest.mark.parametrize("args, field", [
    (["--dataset", "nothing.npz"], "data.dataset"),
    (["--storage", "postgresql+psycopg://nobody@127.0.0.1:9/none"], "storage"),
    (["--storage", "sqlite:////proc/nope/x.db"], "storage"),
])
def test_a_bad_dataset_or_storage_leaves_no_folder(tmp_path, args, field):
    r = run_cli("search", "--n-trials", "1", "--epochs", "1", "--out", str(tmp_path / "new"), *args)
    one_line_error(r, field)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((50, 4)), "y": np.arange(50) % 2, "x_test": np.zeros((10, 4)), "y_test": np.arange(9) % 2},
     "9 labels for 10 samples"),
    ({"x": np.zeros((50, 4)), "y": np.arange(50) % 2, "x_test": np.zeros((10, 5)), "y_test": np.arange(10) % 2},
     "x_test samples are shaped"),
    ({"x": np.zeros((3, 4)), "y": np.arange(3) % 2}, "at least 10"),
    ({"x": np.random.rand(50, 4), "y": np.zeros(50)}, "one class"),
    ({"x": np.full((50, 4), np.inf), "y": np.arange(50) % 2}, "infinite"),
    ({"x": np.random.rand(50, 4), "y": np.arange(100).reshape(50, 2)}, "one label per sample"),
    ({"x": np.random.rand(50, 4), "y": np.arange(50) % 2, "x_test": np.random.rand(5, 4)}, "come together"),
])
def test_data_is_checked_before_any_training(tmp_path, arrays, message):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ConfigError, match=message):
        load_dataset(str(tmp_path / "d.npz"))


def test_labels_shaped_n_by_1_are_read_as_n():
    from slimnas.data._base import make_splits

    x, y = np.random.default_rng(0).random((40, 3)), (np.arange(40) % 2)[:, None]
    s = make_splits("t", x, y, None, None, val_fraction=0.2, test_fraction=0.2, seed=0, standardize=False)
    assert s.n_classes == 2 and s.y_train.ndim == 1


def test_a_pickle_saved_as_npz_and_an_empty_npz_are_refused(tmp_path):
    import pickle

    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": [1, 2]}))
    np.savez(tmp_path / "e.npz")
    for f in ("p.npz", "e.npz"):
        r = run_cli("search", "--dataset", str(tmp_path / f), "--out", str(tmp_path / "o"))
        one_line_error(r, "data.dataset")


@pytest.fixture
def gru_files(tmp_path):
    (tmp_path / "net.py").write_text(GRU_BI)
    return tmp_path


def test_compress_refuses_models_whose_outputs_do_not_fit_the_data(gru_files):
    for builder, shown in (("five_outputs", "(2, 5)"), ("sequence_outputs", "(2, 10, 40)")):
        r = run_cli("compress", "--model", f"net.py:{builder}", "--prune", "0.5", "--out", "o", cwd=gru_files)
        one_line_error(r, "--model")
        assert shown in r.stderr


def test_prune_that_removes_nothing_fails_and_partial_pruning_is_said(gru_files):
    """Defects: --prune 0.5 on a bidirectional GRU exited 0 having pruned nothing; what was left
    alone was only in report.json."""
    r = run_cli("compress", "--model", "net.py:build", "--train-epochs", "1", "--prune", "0.5", "--epochs", "1",
                "--out", "o", cwd=gru_files)
    assert r.returncode == 2 and r.stderr.startswith("error: prune: changed nothing in this model"), r.stderr
    assert "gru" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("compress", "--model", "net.py:build_conv", "--train-epochs", "1", "--prune", "0.5", "--epochs", "1",
                "--out", "o2", cwd=gru_files)
    assert r.returncode == 0, r.stderr
    assert "warning: prune left gru as it was" in " ".join(r.stdout.split())
    report = json.loads((gru_files / "o2" / "report.json").read_text())
    assert report["steps"]["prune"]["layers"]["conv"] == [8, 4] and report["warnings"]


def test_auto_on_a_bidirectional_gru(gru_files):
    """Defect: --auto stopped on layer precisions it cannot set ('gru'). Now precision genes go
    to the layers quantization acts on, and a MAC budget pruning cannot reach is one line."""
    r = run_cli("compress", "--model", "net.py:build", "--train-epochs", "1", "--auto", "--budget", "bytes<=6KB",
                "--n-trials", "2", "--epochs", "1", "--final-epochs", "1", "--out", "a", cwd=gru_files)
    assert r.returncode == 0, r.stderr
    policy = json.loads((gru_files / "a" / "policy.json").read_text())["policy"]
    precisions = {s["compressor"]: s["options"] for s in policy["steps"]}["quantize"]["layer_precision"]
    assert set(precisions) == {"fc"}
    r = run_cli("compress", "--model", "net.py:build", "--train-epochs", "1", "--auto", "--budget", "macs<=50%",
                "--out", "b", cwd=gru_files)
    one_line_error(r, "--budget")
    assert "gru" in r.stderr


def test_sensitivity_reports_only_what_was_measured(gru_files):
    import importlib.util

    spec = importlib.util.spec_from_file_location("net", gru_files / "net.py")
    net = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(net)
    data = load_dataset("mnist1d")
    sens = analyze_sensitivity(net.build_conv(), data, ratios=(0.5, 0.9))
    assert sens.curves.get("gru", []) == []  # left alone at every ratio: no point
    assert all(macs < sens.baseline_macs for points in sens.curves.values() for _, _, macs in points)
    assert len(sens.curves["conv"]) == 2


def test_compress_checks_the_device():
    for device in ("cuda", "gpu", "cuda:7"):
        r = run_cli("compress", "--model", "x.py:build", "--prune", "0.5", "--device", device)
        if device == "cuda" and torch.cuda.is_available():
            continue
        one_line_error(r, "device")


def test_compress_fine_tunes_until_it_stops_helping_and_warns_on_a_big_loss(tmp_path, trained_paper_cnn):
    from slimnas.compress import CompressionPolicy, compress

    model, data = trained_paper_cnn
    policy = CompressionPolicy.of(prune={"ratio": 0.7})
    short = compress(model, data, policy, epochs=2, latency_repeats=2)
    default = compress(model, data, policy, latency_repeats=2)
    epochs_run = default.steps["prune"].get("epochs_run")
    assert epochs_run is not None and 2 < epochs_run <= 30
    assert default.after["val_accuracy"] >= short.after["val_accuracy"]
    crushed = compress(model, data, CompressionPolicy.of(prune={"ratio": 0.9}), epochs=0, latency_repeats=2)
    assert any("points of validation accuracy" in w for w in crushed.warnings)


@pytest.fixture(scope="module")
def trained_paper_cnn():
    from slimnas.models import mnist1d_paper_cnn
    from slimnas.spaces import TrainSpec
    from slimnas.training import fit

    data = load_dataset("mnist1d")
    torch.manual_seed(0)
    model = mnist1d_paper_cnn()
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=15, lr=1e-2), seed=0)
    return model.eval(), data


def test_label_column_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    rows = ["a,b,c,d,e,target"] + [",".join(f"{v:.4f}" for v in r) + f",{int(r[0] > 0)}" for r in x]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    r = run_cli("search", "--dataset", str(tmp_path / "d.csv"), "--n-trials", "1", "--epochs", "1",
                "--out", str(tmp_path / "o"))
    one_line_error(r, "data.label_column")
    assert "['a', 'b', 'c', 'd', 'e', 'target']" in r.stderr and "--label-column" in r.stderr
    r = run_cli("search", "--dataset", str(tmp_path / "d.csv"), "--label-column", "target", "--n-trials", "1",
                "--epochs", "1", "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr


def test_output_marks_budget_misses_and_untrained_trials(tmp_path, tiny_config):
    r = run_cli("search", str(tiny_config()), "--n-trials", "6", "--seed", "1", "--budget", "macs<=600",
                "--out", str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("trial ")]
    skipped = [ln for ln in lines if " skipped " in ln]
    assert skipped and not any("val_acc" in ln for ln in skipped)  # not trained: no accuracy shown
    docs = [json.loads(p.read_text()) for p in sorted((tmp_path / "o" / "trials").glob("*/metrics.json"))]
    for ln, doc in zip(lines, docs, strict=True):
        if doc["state"] == "complete" and not doc["feasible"]:
            assert " over budget " in ln
    r = run_cli("compress", "--help")
    assert "<bool>" not in r.stdout and "[default: 4.0]" in " ".join(r.stdout.split())


def test_removed_column_agrees_with_the_widths():
    from rich.console import Console

    from slimnas.report._explain import explanation_table

    doc = {"policy": {"steps": []}, "layers": [{"layer": "a", "width": 16, "kept": 10, "ratio": 0.0},
                                                {"layer": "b", "width": 16, "kept": 16, "ratio": 0.0}]}
    console = Console(width=200, record=True)
    console.print(explanation_table(doc, "t"))
    text = console.export_text()
    assert "0.38" in text and "removed" in text
    slimnas.__version__  # noqa: B018 - the package imports
