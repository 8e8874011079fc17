"""The compress command: library function and typer command, on real files."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import typer
from typer.testing import CliRunner

from slimnas.cli import build_app
from slimnas.compress import CompressionPolicy, compress
from slimnas.errors import ConfigError
from slimnas.models._user import import_model


@pytest.fixture
def model_files(tmp_path, trained_mlp, conv_net_file):
    shutil.copy(conv_net_file, tmp_path / "net.py")
    torch.manual_seed(0)
    model, _ = import_model(f"{tmp_path / 'net.py'}:build")
    torch.save(model.state_dict(), tmp_path / "net.pt")
    torch.save(trained_mlp.state_dict(), tmp_path / "other.pt")
    return tmp_path


def app() -> typer.Typer:
    return build_app()


def test_compress_function_writes_measured_report(model_files, data):
    model, _ = import_model(f"{model_files / 'net.py'}:build", model_files / "net.pt")
    policy = CompressionPolicy.of(prune={"ratio": 0.5}, quantize={"mode": "int8", "qat": True}, distill=True)
    res = compress(model, data, policy, epochs=1, out=model_files / "out", latency_repeats=5)
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
        "compress", "--model", f"{model_files / 'net.py'}:build", "--weights", str(model_files / "net.pt"),
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
    (["--model", "{net}:build", "--weights", "{pt}", "--quantize", "int5"], "--quantize"),
])
def test_user_mistakes_raise_config_errors(model_files, args, field):
    paths = {"net": model_files / "net.py", "other": model_files / "other.pt", "pt": model_files / "net.pt"}
    args = [a.format(**paths) for a in args]
    result = CliRunner().invoke(app(), ["compress", *args, "--prune", "0.5", "--out", str(model_files / "bad")]
                               if "--prune" not in args and "--quantize" not in args else
                               ["compress", *args, "--out", str(model_files / "bad")])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith(field)
    assert "\n" not in str(result.exception)


@pytest.mark.parametrize("args, field", [
    (["--auto", "--budget", "macs<=50%", "--prune", "0.5"], "--prune"),
    (["--auto", "--budget", "macs<=50%", "--quantize", "int8"], "--quantize"),
    (["--auto", "--budget", "macs<=50%", "--step", "cluster:n_clusters=4"], "--step"),
    (["--auto"], "--budget"),
    (["--prune", "0.5", "--budget", "macs<=50%"], "--budget"),
    (["--prune", "0.5", "--n-trials", "5"], "--n-trials"),
    (["--prune", "0.5", "--strategy", "tpe"], "--strategy"),
    (["--prune", "0.5", "--final-epochs", "5"], "--final-epochs"),
    (["--prune", "0.5", "--importance", "l1,taylor"], "--importance"),
    (["--prune", "0.5", "--train-epochs", "5"], "--train-epochs"),
    (["--prune", "0.5", "--hardware-aware"], "--hardware-aware"),
    (["--prune", "0.5", "--no-hardware-aware"], "--no-hardware-aware"),
    ([], "compress"),
    (["--step", "sharpen:amount=2"], "--step"),
    (["--step", "prune:ratio=2"], "--step"),
    (["--prune", "0.5", "--step", "prune:ratio=0.3"], "--step"),
    (["--auto", "--budget", "macs<=50%", "--strategy", "grid"], "--strategy"),
    (["--auto", "--budget", "macs<=50%", "--precision", "int3"], "--precision"),
    (["--auto", "--budget", "macs<=50%", "--early-stopping", "sometimes"], "--early-stopping"),
    (["--prune", "0.5", "--device", "gpu"], "device"),
    (["--importance", "taylor", "--quantize", "int8"], "--importance"),
    (["--importance", "l3", "--prune", "0.5"], "--importance"),
    (["--prune", "0.5", "--temperature", "2"], "--temperature"),
    (["--prune", "0.5", "--no-distill", "--temperature", "2"], "--temperature"),
    (["--auto", "--budget", "macs<=50%", "--no-distill", "--temperature", "2"], "--temperature"),
])
def test_every_option_applies_or_is_refused_before_any_work(model_files, args, field):
    """Options the chosen mode would not use are refused with one line, before the model is
    loaded or trained (a model file that fails to import proves nothing was loaded)."""
    (model_files / "boom.py").write_text("raise RuntimeError('loaded')\ndef build(): pass\n")
    result = CliRunner().invoke(app(), ["compress", "--model", f"{model_files / 'boom.py'}:build", "--weights",
                                        str(model_files / "net.pt"), *args,
                                        "--out", str(model_files / "bad")])
    assert isinstance(result.exception, ConfigError), result.output
    assert str(result.exception).startswith(field + ":"), str(result.exception)
    assert not (model_files / "bad").exists()


def test_auto_uses_the_epochs_it_is_given(model_files, data):
    """--epochs sets the ranking fine-tune of --auto (no hidden cap), --final-epochs the last one."""
    from slimnas.study import auto_compress

    model, _ = import_model(f"{model_files / 'net.py'}:build", model_files / "net.pt")
    res = auto_compress(model, data, budget=["macs<=60%"], n_trials=2, finetune_epochs=3, final_epochs=1,
                        early_stopping="none", refine_epochs=0, latency_repeats=2)
    curves = [t.user_attrs["curve"] for t in res.study.trials if t.state.is_finished()]
    assert [len(c) for c in curves] == [3, 3]
    with pytest.raises(ConfigError, match="^--strategy"):
        auto_compress(model, data, budget=["macs<=60%"], strategy="grid")


def test_auto_on_a_rows_profile_says_how_to_ship_the_file_it_timed(model_files):
    """On a profile whose runtime runs the batch-as-rows layout, --auto's latency is that layout's;
    model.onnx is written plain, and the output says how to export the file the target runs."""
    profile = model_files / "rows.yaml"
    profile.write_text("name: rows64\nruntime: onnxruntime-rows\nthreads: 1\nbatch: [64]\nprecisions: [fp32]\n")
    out = model_files / "auto-rows"
    result = CliRunner().invoke(app(), [
        "compress", "--model", f"{model_files / 'net.py'}:build", "--weights", str(model_files / "net.pt"),
        "--auto", "--budget", "latency_ms<=80%", "--device-profile", str(profile), "--n-trials", "2",
        "--epochs", "1", "--final-epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--format onnx-fp32-rows" in " ".join(result.output.split())
    hardware = json.loads((out / "report.json").read_text())["hardware"]
    assert hardware["runtime"] == "onnxruntime-rows"
    assert set(hardware["precision"]["layer_precision"].values()) == {"fp32"}


def test_compress_refuses_an_out_folder_with_files_unless_told_to_overwrite(model_files):
    """An existing, non-empty --out was overwritten without a word; now it is refused in one line
    before any work, and --overwrite replaces it."""
    out = model_files / "taken"
    out.mkdir()
    (out / "report.json").write_text("{}")
    args = ["compress", "--model", f"{model_files / 'net.py'}:build", "--weights", str(model_files / "net.pt"),
            "--prune", "0.5", "--epochs", "0", "--out", str(out)]
    result = CliRunner().invoke(app(), args)
    assert isinstance(result.exception, ConfigError) and str(result.exception).startswith("--out:"), result.output
    assert (out / "report.json").read_text() == "{}"
    result = CliRunner().invoke(app(), [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "after" in json.loads((out / "report.json").read_text())


def test_a_closed_standard_output_ends_the_command_quietly(tmp_path):
    """`slimnas ... | head` exited 1 (click's answer to a closed pipe); now 0, with nothing on stderr."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "slimnas", "compress", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # the reader is gone before the command writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err


def test_the_accuracy_warning_suggests_distilling_only_when_not_distilling(model_files, data):
    model, _ = import_model(f"{model_files / 'net.py'}:build", model_files / "net.pt")
    for distill in (False, True):
        policy = CompressionPolicy.of(prune={"ratio": 0.5}, distill=distill)
        res = compress(model, data, policy, epochs=0, max_drop=-1.0, latency_repeats=2)
        lost = [w for w in res.warnings if "points of validation accuracy" in w]
        assert len(lost) == 1 and ("--distill" in lost[0]) == (not distill), lost
