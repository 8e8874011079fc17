"""``slimnas.load``: every kind of model a run folder holds comes back as the module that was
measured (its exported file is the oracle), with clear errors for what is not there."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import slimnas
from slimnas.cli import build_app
from slimnas.compress import CompressionPolicy, compress
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.models import build_model
from slimnas.models._layers import LowRank
from slimnas.spaces._spec import Candidate
from slimnas.testing import SHAPE, TINY_MODELS, tiny_data

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _outputs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).numpy()


def test_a_plain_trial_loads_as_the_model_its_onnx_file_was_exported_from(plain_run):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(32, 1, 8, 8)).astype(np.float32))
    numbers = [t.number for t in plain_run.study.trials]
    skipped = [t.number for t in plain_run.study.trials if t.user_attrs.get("skipped")]
    assert skipped, "the budget skips a candidate of this run"
    for n in skipped:  # not trained: no model to load, said in one line
        with pytest.raises(ConfigError, match=f"trial {n} was skipped before training"):
            slimnas.load(plain_run.run_dir, trial=n)
    for n in (n for n in numbers if n not in skipped):  # front members and the others alike
        model = slimnas.load(plain_run.run_dir, trial=n)
        assert isinstance(model, nn.Module) and not model.training
        onnx = plain_run.run_dir / "trials" / f"{n:05d}" / "model.onnx"
        np.testing.assert_allclose(_outputs(model, x), predict(onnx, x), atol=1e-4)


def test_compressed_search_trials_load_pruned_factorised_and_clustered(joint_run):
    assert joint_run.front
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(32, 1, 8, 8)).astype(np.float32))
    for member in joint_run.front:
        model = slimnas.load(joint_run.run_dir, trial=member.trial)
        np.testing.assert_allclose(_outputs(model, x), predict(member.path / "model.onnx", x), atol=1e-4)
        arch = Candidate.from_dict(json.loads((member.path / "arch.json").read_text())).arch
        parent = build_model(arch, (1, 8, 8), 10)
        widths = [m.out_channels for m in parent.modules() if isinstance(m, nn.Conv2d)]
        pruned = [m.bn.num_features for m in model.features]
        assert all(p <= w for p, w in zip(pruned, widths, strict=True)) and sum(pruned) < sum(widths)  # pruned
        assert any(isinstance(m, LowRank) for m in model.modules())  # factorised
        for name, m in model.named_modules():  # clustered: 4 shared values per layer
            if isinstance(m, WEIGHTED):
                assert len(torch.unique(m.weight)) <= 4, name


def test_a_trials_folder_loads_on_its_own(plain_run):
    n = plain_run.front[0].trial
    direct = slimnas.load(plain_run.run_dir / "trials" / f"{n:05d}")
    by_number = slimnas.load(plain_run.run_dir, trial=n)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(direct(x), by_number(x))


def test_best_loads_the_best_front_member_that_meets_the_extra_budget(plain_run):
    pareto = json.loads(plain_run.pareto_path.read_text())
    limit = sorted(m["metrics"]["macs"] for m in pareto["front"])[1]  # all but the heaviest members qualify
    meeting = [m for m in pareto["front"] if m["metrics"]["macs"] <= limit]
    expected = max(meeting, key=lambda m: (m["metrics"]["val_accuracy"], -m["metrics"]["macs"]))["trial"]
    best = slimnas.load(plain_run.run_dir, best=f"macs<={limit}")
    x = torch.randn(8, 1, 8, 8)
    assert torch.equal(best(x), slimnas.load(plain_run.run_dir, trial=expected)(x))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"trial": 999}, r"trial: expected a trial of .* with saved weights \(trials 0-"),
    ({}, "trial: expected a trial number, or a budget"),
    ({"trial": 0, "best": ""}, "best: expected either a trial or best"),
    ({"best": "macs<=1"}, r"best: expected a budget one of the \d front members meets \(closest: trial"),
    ({"best": "latency_ms<=1"}, "best: expected a budget on a metric the front members were measured on"),
    ({"best": "macs<="}, "best: expected '<metric><=<value>"),
])
def test_load_refuses_what_a_search_run_does_not_hold(plain_run, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        slimnas.load(plain_run.run_dir, **kwargs)


def test_load_refuses_missing_and_foreign_folders(tmp_path, plain_run):
    with pytest.raises(ConfigError, match="run: expected an existing run or model folder"):
        slimnas.load(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="run: expected a folder with a model's weights.pt"):
        slimnas.load(tmp_path)
    with pytest.raises(ConfigError, match="trial: expected a search run folder"):
        slimnas.load(tmp_path, trial=1)


POLICIES = {
    "pruned": (CompressionPolicy.of(prune={"ratio": 0.5}), lambda m: m[0].out_channels < 25),
    "factorised": (CompressionPolicy.of(lowrank={"rank_ratio": 0.5}), lambda m: any(isinstance(x, LowRank) for x in m.modules())),
    "clustered": (CompressionPolicy.of(cluster={"n_clusters": 4}),
                  lambda m: all(len(torch.unique(x.weight)) <= 4 for x in m.modules() if isinstance(x, WEIGHTED))),
}


@pytest.mark.parametrize("kind", list(POLICIES))
def test_a_compress_output_loads_back(tmp_path, kind):
    """``compress`` from Python records no model: the caller names the original, which is left as it was."""
    policy, changed = POLICIES[kind]
    original = TINY_MODELS["paper_cnn"]()
    result = compress(original, tiny_data(), policy, epochs=0, out=tmp_path / kind, latency_repeats=3)
    fresh = TINY_MODELS["paper_cnn"]()
    before = copy.deepcopy(fresh.state_dict())
    loaded = slimnas.load(tmp_path / kind, model=fresh)
    assert changed(loaded) and all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
    x = torch.randn(16, *SHAPE)
    np.testing.assert_allclose(_outputs(loaded, x), _outputs(result.model, x), atol=1e-6)
    with pytest.raises(ConfigError, match="model: expected the original architecture"):
        slimnas.load(tmp_path / kind)


def test_the_compress_command_records_the_model_it_compressed(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text("from slimnas.testing import TINY_MODELS\n\ndef build():\n"
                                     "    return TINY_MODELS['paper_cnn']()\n")
    torch.save(TINY_MODELS["paper_cnn"]().state_dict(), tmp_path / "net.pt")
    out = tmp_path / "small"
    monkeypatch.chdir(tmp_path)  # a relative --model path, recorded as an absolute one
    r = CliRunner().invoke(build_app(), ["compress", "--model", "net.py:build", "--weights", "net.pt",
                                         "--prune", "0.5", "--epochs", "0", "--out", str(out)])
    monkeypatch.undo()
    assert r.exit_code == 0, r.output
    info = json.loads((out / "run.json").read_text())
    assert info["input_shape"] == list(SHAPE) and info["model"] == f"{tmp_path / 'net.py'}:build"
    loaded = slimnas.load(out)  # no model= needed
    assert loaded[0].out_channels < 25
    x = torch.randn(8, *SHAPE)
    np.testing.assert_allclose(_outputs(loaded, x), predict(out / "model.onnx", x), atol=1e-3)
