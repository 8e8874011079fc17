"""The compress command: library function and typer command, on real files."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
import typer
from typer.testing import CliRunner

from slimnas.cli._compress import compress_command
from slimnas.compress import compress, load_model
from slimnas.errors import ConfigError

MODEL_FILE = textwrap.dedent("""
    import torch

    def build():
        return torch.nn.Sequential(
            torch.nn.Conv1d(1, 8, 5, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv1d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(80, 10))
""")


@pytest.fixture
def model_files(tmp_path, trained_mlp):
    (tmp_path / "net.py").write_text(MODEL_FILE)
    torch.manual_seed(0)
    model, _ = load_model(f"{tmp_path / 'net.py'}:build")
    torch.save(model.state_dict(), tmp_path / "net.pt")
    torch.save(trained_mlp.state_dict(), tmp_path / "other.pt")
    return tmp_path


def app() -> typer.Typer:
    a = typer.Typer()
    a.command()(compress_command)
    return a


def test_compress_function_writes_measured_report(model_files, data):
    model, _ = load_model(f"{model_files / 'net.py'}:build", model_files / "net.pt")
    res = compress(model, data, prune=0.5, distill=True, quantize="int8", epochs=1, out=model_files / "out",
                   latency_repeats=5)
    report = json.loads((model_files / "out" / "report.json").read_text())
    for side in ("before", "after"):
        assert {"test_accuracy", "params", "macs", "bytes", "latency_ms_b1", "latency_ms_b64"} <= set(report[side])
    assert report["after"]["macs"] < report["before"]["macs"]
    assert report["after"]["bytes"] < 0.5 * report["before"]["bytes"]
    assert (model_files / "out" / "model.onnx").read_bytes() == res.onnx
    assert report["checks"]["state_dict_reload_max_abs_diff"] <= 1e-5
    assert report["checks"]["onnx_top1_agreement"] > 0.8


def test_cli_runs_end_to_end(model_files):
    out = model_files / "cli-out"
    result = CliRunner().invoke(app(), [
        "--model", f"{model_files / 'net.py'}:build", "--weights", str(model_files / "net.pt"),
        "--prune", "0.25", "--lowrank", "0.5", "--quantize", "fp16", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "after/before" in result.output and "MACs" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["params"] < report["before"]["params"]
    assert (out / "compressed" / "structure.json").is_file()


@pytest.mark.parametrize("args, field", [
    (["--model", "nowhere.py:build"], "--model"),
    (["--model", "json:dumps"], "--model"),
    (["--model", "{net}:missing"], "--model"),
    (["--model", "{net}:build", "--weights", "{other}"], "--weights"),
    (["--model", "{net}:build", "--weights", "{pt}", "--prune", "1.5"], "--prune"),
    (["--model", "{net}:build", "--weights", "{pt}", "--quantize", "int4"], "--quantize"),
])
def test_user_mistakes_raise_config_errors(model_files, args, field):
    paths = {"net": model_files / "net.py", "other": model_files / "other.pt", "pt": model_files / "net.pt"}
    args = [a.format(**paths) for a in args]
    result = CliRunner().invoke(app(), [*args, "--out", str(model_files / "bad")])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith(field)
    assert "\n" not in str(result.exception)
