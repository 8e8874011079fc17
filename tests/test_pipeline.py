"""One candidate pipeline: every way slimnas makes a candidate (a searched model, a compressed
trial of a joint search, a supernet's sub-network warm-started and its costs while the supernet
searches, a ``compress --auto`` policy) is measured by the same function over the metric
registry. A metric a plug-in registers is therefore measured, by its own rule, on each path,
and recorded with the trial."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import slimnas
from slimnas.config import MeasureSettings
from slimnas.data import load_dataset
from slimnas.measure import Artifact, BaseMetric, evaluate_artifact, register_metric
from slimnas.measure._metric import METRICS

NAME = "file_kib_probe"


class Probe(list):
    """The plug-in metric's figures, in the order it measured them, and how many times the
    built-in accuracy metric's own rule measured an exported file."""

    accuracy_on_file = 0


@pytest.fixture
def probe(monkeypatch):
    """A plug-in metric measured on the exported file (its kibibytes); it notes every artifact it
    measured, so a path that skips it is seen. The accuracy metric's rule is watched too: a path
    that fills ``val_accuracy`` by hand makes the registry skip it."""
    seen = Probe()
    accuracy = METRICS.get("accuracy")
    rule = accuracy.measure

    def watched(self, ctx):
        seen.accuracy_on_file += ctx.onnx is not None
        return rule(self, ctx)

    monkeypatch.setattr(accuracy, "measure", watched)

    @register_metric(NAME)
    class FileKiB(BaseMetric):
        unit, when = "KiB", "trained"
        units = {"": 1.0, "kib": 1.0}

        def measure(self, ctx):
            onnx = ctx.onnx
            size = len(onnx) if isinstance(onnx, bytes) else len(open(onnx, "rb").read())
            seen.append(size / 1024)
            return size / 1024

    try:
        yield seen
    finally:
        METRICS.unregister(NAME)


def _config(tmp_path, name: str, **extra) -> str:
    cfg = {"data": {"dataset": "digits"}, "objectives": ["accuracy", "macs"], "budget": [f"{NAME}<=1000000"],
           "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
           "space": {"family": ["mlp"], "mlp": {"n_layers": 1, "width": [8, 16]}}, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _recorded(result) -> list[dict]:
    """Each complete trial's metrics as the study and its metrics.json keep them."""
    out = []
    for t in result.study.trials:
        if t.state.name != "COMPLETE":
            continue
        stored = json.loads((result.run_dir / "trials" / f"{t.number:05d}" / "metrics.json").read_text())
        assert stored[NAME] == t.user_attrs["metrics"][NAME]
        out.append(stored)
    return out


def _check_on_file(metrics: dict) -> None:
    """The probe's figure is the file's own size, so it was measured on the artifact's file."""
    assert metrics[NAME] == pytest.approx(metrics["bytes"] / 1024), metrics


def test_a_plugin_metric_is_measured_on_a_plain_search_trial(tmp_path, probe):
    r = slimnas.search(_config(tmp_path, "plain"), n_trials=2, seed=0, out=str(tmp_path / "plain"))
    trials = _recorded(r)
    assert len(trials) == 2 and len(probe) >= 2 and probe.accuracy_on_file >= 2
    for m in trials:
        _check_on_file(m)


def test_a_plugin_metric_is_measured_on_a_compressed_trial(tmp_path, probe):
    compression = {"prune": {"low": 0.2, "high": 0.5}, "precision": ["int8"], "finetune_epochs": 1,
                   "final_epochs": 1, "distill": [False]}
    cfg = _config(tmp_path, "joint", space={"family": ["mlp"], "mlp": {"n_layers": 1, "width": [16]},
                                             "compression": compression})
    r = slimnas.search(cfg, n_trials=2, seed=0, out=str(tmp_path / "joint"))
    trials = _recorded(r)
    assert trials and all("parent_val_accuracy" in m for m in trials)  # compressed trials
    assert probe.accuracy_on_file >= len(trials)
    for m in trials:
        _check_on_file(m)


def test_a_plugin_metric_is_measured_on_supernet_subnets_and_warm_started_trials(tmp_path, probe):
    options = {"epochs": 1, "n_pairs": 10, "search_trials": 20, "population_size": 4, "n_candidates": 2,
               "max_candidates": 2, "finetune_epochs": 1, "int8_checks": 0, "precision": ["fp32", "int8"]}
    cfg = _config(tmp_path, "supernet", objectives=["accuracy", "bytes"],
                  strategy={"name": "supernet", "options": options})
    r = slimnas.search(cfg, n_trials=2, seed=0, out=str(tmp_path / "supernet"))
    trials = _recorded(r)
    assert trials and all("supernet_candidate" in m for m in trials)  # warm-started from the supernet
    assert probe.accuracy_on_file >= len(trials)
    for m in trials:
        _check_on_file(m)
    # the supernet's own search measured it on its sub-networks' files too, before any trial
    report = json.loads((r.run_dir / "supernet" / "report.json").read_text())
    assert all(NAME in c["predicted"] for c in report["candidates"]), report["candidates"]
    assert len(probe) > len(trials)


def test_a_plugin_metric_is_measured_on_every_auto_policy_and_the_result(probe):
    from slimnas.models import mnist1d_paper_cnn
    from slimnas.study import auto_compress

    data = load_dataset("mnist1d")
    res = auto_compress(mnist1d_paper_cnn(), data, budget=["macs<=60%", f"{NAME}<=1000000"], n_trials=2,
                        finetune_epochs=0, final_epochs=0, refine_epochs=0, early_stopping="none",
                        latency_repeats=2, hardware_aware=False)
    done = [t for t in res.study.trials if t.state.name == "COMPLETE"]
    assert done and probe.accuracy_on_file >= len(done) + 2  # the input model, each policy, the result
    for t in done:
        _check_on_file(t.user_attrs["metrics"])
    _check_on_file(res.before)
    _check_on_file(res.after)


def test_evaluate_measures_accuracy_on_the_file_by_its_rule(probe):
    """The one function measures what it is asked by the registered rules: accuracy of the
    exported file in ONNX Runtime, the plug-in's figure, and nothing filled in by hand."""
    from slimnas.compress import quantize_model

    data = load_dataset("digits")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    onnx = quantize_model(model, data.input_shape, mode="fp32")
    metrics = evaluate_artifact(Artifact(model, onnx, data.input_shape), MeasureSettings(), ["accuracy", NAME],
                                data)
    assert set(metrics) == {"val_accuracy", NAME}
    assert metrics[NAME] == pytest.approx(len(onnx) / 1024) and probe == [metrics[NAME]]
    assert probe.accuracy_on_file == 1
    assert 0.0 <= metrics["val_accuracy"] <= 1.0
