"""Tasks through ``slimnas search``: a regression, a multi-label and a language-model search end to
end from the command line (front, report, runs, export), a user's task from a file, and the
refusals; nothing of a regression run falls back to accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import slimnas
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.measure import Artifact, evaluate_artifact
from slimnas.study._plan import SearchPlan
from slimnas.study._search import load_splits
from slimnas.tasks._run import task_from_record

SPACE = {"family": ["mlp"], "mlp": {"n_layers": 1, "width": [8, 16]}}
TRAINING = {"epochs": 3, "lr": 0.01, "optimizer": "adam"}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "slimnas", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=cwd)


def config(tmp_path, **extra) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"space": SPACE, "training": TRAINING, **extra}))
    return str(path)


def keys_of(doc) -> set[str]:
    """Every key and string anywhere in a JSON document."""
    if isinstance(doc, dict):
        return set(doc) | set().union(*(keys_of(v) for v in doc.values())) if doc else set()
    if isinstance(doc, list):
        return set().union(*(keys_of(v) for v in doc)) if doc else set()
    return {doc} if isinstance(doc, str) else set()


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regression")
    out = tmp / "run"
    r = run_cli("search", config(tmp, task="regression"), "--dataset", "diabetes", "--n-trials", "3", "--budget", "mse<=1e6",
                "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_a_regression_search_scores_r2_and_never_falls_back_to_accuracy(regression_run, tmp_path, cli_here):
    out, stdout = regression_run
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["r2", "macs"] and pareto["budget"] == ["mse<=1000000"] and pareto["front"]
    for m in pareto["front"]:
        metrics = m["metrics"]
        assert {"val_r2", "val_mse", "val_mae", "val_loss", "test_r2", "test_mse", "test_mae"} <= set(metrics)
        assert metrics["val_mse"] > 100  # in the targets' units (standardised targets would give about 1)
    assert "val R²" in stdout and "test R²" in stdout and "acc" not in stdout
    info = json.loads((out / "run.json").read_text())
    assert info["task"]["name"] == "regression" and info["n_classes"] == 1
    assert yaml.safe_load((out / "config.yaml").read_text())["task"] == "regression"  # the config's task: key
    r = cli_here("report", str(out))
    assert r.returncode == 0, r.stderr
    from slimnas.report._runs import best_summary
    from slimnas.study._runs import summarize_run

    assert best_summary(summarize_run(out)).split(": ")[1].startswith("test R² ")  # slimnas runs: by the task's metric
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["quality"]["key"] == "val_r2"
    from slimnas.report._figures import front_figures

    titles = [f["layout"]["title"]["text"] for f in front_figures(report).values()]  # R² against each cost
    assert titles and all(t.startswith("R² vs") for t in titles)
    markdown = (out / "report.md").read_text()
    assert "test R²" in markdown and "; task regression;" in markdown
    everything = set()
    for path in [out / "pareto.json", out / "report.json", *out.glob("trials/*/metrics.json")]:
        everything |= keys_of(json.loads(path.read_text()))
    assert not {k for k in everything if "accuracy" in k or k.endswith("_acc")}, everything
    assert "acc" not in markdown.replace("accept", "")


def test_export_best_of_a_regression_run_outputs_the_targets_units(regression_run, tmp_path, cli_here):
    out, _ = regression_run
    r = cli_here("export", str(out), "--best", "mse<=1e7", "--out", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    loaded = slimnas.study._load.open_model(out, best="mse<=1e7")
    task = task_from_record(loaded.task)
    splits = load_dataset("diabetes")
    with torch.no_grad():
        eager = task.decode(loaded.model(splits.x_test)).numpy()
    onnx = predict(tmp_path / "m.onnx", splits.x_test)
    np.testing.assert_allclose(onnx, eager, rtol=1e-4, atol=1e-3)
    assert 20 < onnx.mean() < 300  # diabetes progression scores, not standardised values


def test_a_multilabel_search_scores_mean_average_precision(tmp_path, cli_here):
    out = tmp_path / "run"
    r = cli_here("search", config(tmp_path), "--dataset", "digits-multilabel", "--n-trials", "2", "--out", str(out),
                "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["mean_ap", "macs"]
    assert all({"val_mean_ap", "val_f1", "test_mean_ap", "test_f1"} <= set(m["metrics"]) for m in pareto["front"])
    assert "test mAP" in r.stdout
    from slimnas.study._export import export_run

    export_run(out, tmp_path / "m.onnx", format="onnx-fp32", best="")
    loaded = slimnas.study._load.open_model(out, best="")
    x = load_dataset("digits-multilabel").x_val[:50]
    with torch.no_grad():
        np.testing.assert_allclose(predict(tmp_path / "m.onnx", x), torch.sigmoid(loaded.model(x)).numpy(), atol=1e-5)


USER_TASK = '''
import torch
from slimnas.tasks import Regression, TaskMetric

class Huber(Regression):
    name = "huber"
    metrics = (TaskMetric("huber", "minimize", "Huber", 0.0, float("inf")),
               TaskMetric("loss", "minimize", "loss", 0.0, float("inf")))
    primary = "huber"

    def loss(self, output, target):
        return torch.nn.functional.huber_loss(output, target)

    def score(self, output, target):
        value = float(self.loss(output, target))
        return {"huber": value, "loss": value}

def build():
    return Huber()
'''


def test_a_users_task_from_a_file_runs_a_search_and_its_report(tmp_path):
    (tmp_path / "mytask.py").write_text(USER_TASK)
    out = tmp_path / "run"
    r = run_cli("search", config(tmp_path), "--dataset", "diabetes", "--task", "mytask.py:build", "--n-trials", "2",
                "--out", str(out), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["huber", "macs"]
    assert all({"val_huber", "test_huber"} <= set(m["metrics"]) for m in pareto["front"])
    info = json.loads((out / "run.json").read_text())
    assert info["task"]["name"] == "huber" and info["task"]["spec"] == f"{tmp_path / 'mytask.py'}:build"
    from slimnas.report._report import write_report

    data = write_report(out).data  # this process never loaded the task: its file is found from run.json
    assert data["run"]["quality"]["key"] == "val_huber" and "val Huber" in (out / "report.md").read_text()


@pytest.mark.parametrize("overrides, message", [
    ({"dataset": "diabetes", "task": "multilabel"}, "task: expected the task of the dataset 'diabetes' (regression)"),
    ({"dataset": "diabetes", "objectives": ["mean_ap", "macs"]},
     "objectives: expected metrics of the run's regression task (r2, mse, mae, loss) or measured ones"),
    ({"dataset": "diabetes", "objectives": ["accuracy", "params"]}, "objectives: expected metrics of the run's "
                                                                    "regression task (r2, mse, mae, loss)"),
    ({"dataset": "digits", "budget": ["r2>=0.5"]}, "budget: expected metrics of the run's classification task "
                                                   "(accuracy, loss)"),
    ({"dataset": "digits", "task": "regression"}, "task: expected classification for the dataset 'digits'"),
])
def test_a_task_that_contradicts_the_data_or_another_tasks_metric_is_one_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as e:
        load_splits(SearchPlan.load(None, out=str(tmp_path / "x"), **overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)


def test_the_cli_refuses_a_contradicting_task_in_one_line_exit_2(tmp_path, cli_here):
    r = cli_here("search", "--dataset", "digits-multilabel", "--task", "regression", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "digits-multilabel" in r.stderr and "multilabel" in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_task_metric_is_measured_on_the_exported_file(tmp_path):
    """r2 of the ONNX file in ONNX Runtime: what the eager model scores, through the one pipeline."""
    from slimnas.export import export_onnx

    splits = load_dataset("diabetes")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1)).eval()
    path = export_onnx(model, tmp_path / "m.onnx", splits.input_shape)
    on_file = evaluate_artifact(Artifact(model, path, splits.input_shape), None, ["r2", "loss", "mae"], splits)
    eager = splits.task.score(model(splits.x_val).detach(), splits.y_val)
    assert on_file["val_r2"] == pytest.approx(eager["r2"], abs=1e-5) and on_file["val_mae"] > 1
    assert on_file["val_loss"] == pytest.approx(eager["loss"], rel=1e-5)
    with pytest.raises(ConfigError, match="accuracy"):  # a regression run has no accuracy to measure
        evaluate_artifact(Artifact(model, path, splits.input_shape), None, ["accuracy"], splits)


def test_a_language_model_search_on_pysource_scores_perplexity_with_a_causal_per_token_head(tmp_path, cli_here):
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "pysource", "options": {"n": 120, "seq_len": 16}},
                                    "space": {"family": ["transformer"], "transformer": {
                                        "depth": 1, "heads": 2, "dim": [8, 16], "mlp_ratio": 2.0}},
                                    "training": {"epochs": 1, "lr": 0.003, "optimizer": "adam"}}))
    out = tmp_path / "run"
    r = cli_here("search", str(path), "--n-trials", "2", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["objectives"] == ["perplexity", "macs"]
    member = pareto["front"][0]
    assert member["arch"]["per_token"] == "causal" and 1 < member["metrics"]["test_perplexity"] < 200
    loaded = slimnas.study._load.open_model(out, trial=member["trial"])
    x = load_dataset("pysource", options={"n": 120, "seq_len": 16}).x_val[:4]
    with torch.no_grad():
        y = loaded.model(x)
        changed = x.clone()
        changed[..., 10:] = 0  # later tokens do not change earlier predictions
        assert y.shape == (4, 16, loaded.n_classes) and torch.equal(loaded.model(changed)[:, :10], y[:, :10])
    np.testing.assert_allclose(predict(out / "trials" / f"{member['trial']:05d}" / "model.onnx", x), y.numpy(),
                               atol=1e-4)


def test_a_per_token_task_needs_a_family_with_a_per_token_head(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"space": {"family": ["cnn", "mlp"]}}))
    with pytest.raises(ConfigError, match=r"^space.family: expected cnn, mobilenet, resnet, rnn, transformer for the lm "
                                          r"task \(the families with a per-token head; mlp has none: an MLP per "
                                          r"position reads no context, .*\), got 'mlp'$"):
        SearchPlan.load(tmp_path / "c.yaml", dataset="pysource", out=str(tmp_path / "x"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"space": {"family": ["nb201"]}}))
    with pytest.raises(ConfigError, match=r"; nb201 has none: its NAS-Bench-201 skeleton halves the input twice"):
        SearchPlan.load(tmp_path / "c.yaml", dataset="pysource-tags", out=str(tmp_path / "x"))
    assert SearchPlan.load(None, dataset="pysource", out=str(tmp_path / "x")).space.families == ("cnn",)


def test_a_study_started_with_a_task_resumes_only_with_it():
    from slimnas.study._definition import check_definition, definition_of

    started = definition_of({"data": {"dataset": "diabetes"}, "task": "regression", "objectives": ["r2"]})
    check_definition(started, dict(started), "s")
    with pytest.raises(ConfigError, match=r"^task: expected the task study 's' was started with \('regression'\)"):
        check_definition(started, definition_of({"data": {"dataset": "diabetes"}, "objectives": ["r2"],
                                                 "task": "mytask.py:build"}), "s")
    plain = definition_of({"data": {"dataset": "digits"}, "objectives": ["accuracy"]})
    assert "task" not in plain  # a classification study's definition as it always was
