"""``slimnas export``'s library half: every format, from a plain and a compressed trial, read
back by its own runtime and compared with the loaded model here (not only by the exporter's
own check)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import slimnas
from slimnas.compress import CompressionPolicy, compress
from slimnas.errors import ConfigError
from slimnas.export import EXPORT_FORMATS, ExportMismatchError, list_export_formats, predict
from slimnas.study import open_run
from slimnas.study._export import export_run
from slimnas.testing import TINY_MODELS, tiny_data


def _run_file(fmt: str, path, x: torch.Tensor) -> np.ndarray:
    """The exported file's outputs, by the runtime a user would load it with."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt.startswith("onnx"):
            return predict(path, x)
        if fmt == "torchscript":
            return torch.jit.load(str(path))(x).numpy()
        if fmt == "torch-export":
            return torch.export.load(str(path)).module()(x).numpy()
        if fmt == "state-dict":
            return slimnas.load(path)(x).numpy()  # the folder alone rebuilds the model
    return EXPORT_FORMATS.get(fmt)().run(path, x, None)  # a plug-in format: its own reader


SUFFIX = {"onnx-fp32": ".onnx", "onnx-fp16": ".onnx", "onnx-int8": ".onnx", "torchscript": ".pt",
          "torch-export": ".pt2", "state-dict": ""}


@pytest.mark.parametrize("fmt", list_export_formats())
@pytest.mark.parametrize("which", ["plain", "joint"])
def test_every_format_reproduces_the_trial(fmt, which, plain_run, joint_run, tmp_path):
    run = plain_run if which == "plain" else joint_run
    trial = run.front[0].trial
    out = tmp_path / f"model{SUFFIX.get(fmt, EXPORT_FORMATS.get(fmt).suffix)}"
    result = export_run(run.run_dir, out, format=fmt, trial=trial)
    assert result.path == out and out.exists() and result.n_inputs > 0
    x = open_run(run.run_dir).data().x_test[:128]
    model = slimnas.load(run.run_dir, trial=trial)
    with torch.no_grad():
        expected = model(x).numpy()
    cls = EXPORT_FORMATS.get(fmt)
    if not cls.runs_here:  # Core ML predicts on Apple platforms only: its structure was checked
        assert not result.ran and result.to_dict()["max_abs_diff"] is None
        return
    got = _run_file(fmt, out, x)
    if cls.min_agreement is not None:  # int8 changes outputs by design: the class it picks must rarely change
        assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.9
        assert np.abs(got - expected).max() > 0  # and it is really quantized
    else:
        np.testing.assert_allclose(got, expected, atol=cls.atol * max(1.0, np.abs(expected).max()))
    if fmt == "onnx-fp16":
        fp32 = export_run(run.run_dir, tmp_path / "fp32.onnx", format="onnx-fp32", trial=trial).path
        assert out.stat().st_size < fp32.stat().st_size


def test_a_state_dict_export_records_what_rebuilds_it(plain_run, tmp_path):
    trial = plain_run.front[0].trial
    export_run(plain_run.run_dir, tmp_path / "sd", format="state-dict", trial=trial)
    info = json.loads((tmp_path / "sd" / "run.json").read_text())
    arch = json.loads((tmp_path / "sd" / "arch.json").read_text())
    assert info["input_shape"] == [1, 8, 8] and info["n_classes"] == 10 and info["trial"] == trial
    assert arch == json.loads((plain_run.front[0].path / "arch.json").read_text())
    state = torch.load(tmp_path / "sd" / "weights.pt", weights_only=True)
    saved = torch.load(plain_run.front[0].path / "weights.pt", weights_only=True)
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in state)


def test_best_exports_the_member_load_picks(plain_run, tmp_path):
    limit = max(m.metrics["macs"] for m in plain_run.front)
    export_run(plain_run.run_dir, tmp_path / "b.pt", format="torchscript", best=f"macs<={limit}")
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(tmp_path / "b.pt"))(x), slimnas.load(plain_run.run_dir, best="")(x))


def test_export_errors(plain_run, tmp_path):
    with pytest.raises(ConfigError, match="format: expected one of"):
        export_run(plain_run.run_dir, tmp_path / "m.onnx", format="onnx", trial=0)
    with pytest.raises(ConfigError, match="out: expected a file path"):
        export_run(plain_run.run_dir, tmp_path, format="onnx-fp32", trial=0)
    with pytest.raises(ConfigError, match="trial: expected a trial of"):
        export_run(plain_run.run_dir, tmp_path / "m.onnx", format="onnx-fp32", trial=42)
    # a compress output made from Python names no data: int8 has nothing to calibrate on
    compress(TINY_MODELS["mlp"](), tiny_data(), CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0,
             out=tmp_path / "c", latency_repeats=3)
    with pytest.raises(ConfigError, match="format: expected a run that names its data"):
        export_run(tmp_path / "c", tmp_path / "c.onnx", format="onnx-int8", model=TINY_MODELS["mlp"]())
    ok = export_run(tmp_path / "c", tmp_path / "c.onnx", format="onnx-fp32", model=TINY_MODELS["mlp"]())
    assert ok.n_inputs == 64  # random inputs, there being no data


def test_a_file_that_does_not_reproduce_the_model_is_refused_and_removed(plain_run, tmp_path, monkeypatch):
    fmt = EXPORT_FORMATS.get("onnx-fp32")
    real = fmt.write

    def off(self, model, path, ctx):  # writes the model with one bias nudged
        with torch.no_grad():
            bias = [p for n, p in model.named_parameters() if n.endswith("bias")][-1]
            bias[0] += 0.5
            try:
                real(self, model, path, ctx)
            finally:
                bias[0] -= 0.5

    monkeypatch.setattr(fmt, "write", off)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportMismatchError, match="differ from the eager model's by 0.5"):
        export_run(plain_run.run_dir, out, format="onnx-fp32", trial=plain_run.front[0].trial)
    assert not out.exists()
