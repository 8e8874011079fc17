"""Export formats for edge runtimes: ExecuTorch ``.pte`` files run back in ExecuTorch's own runtime."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from slimnas.config._profile import allowed_precisions, parse_profile, read_profile
from slimnas.errors import ConfigError
from slimnas.export import export_model
from slimnas.measure._profile import check_profile
from slimnas.testing import SHAPE, TINY_MODELS, tiny_data

needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch not installed (pip install 'slimnas[edge]')")


@needs_executorch
def test_pte_files_run_in_executorch_delegated_to_xnnpack(tmp_path):
    from slimnas.export._executorch import pte_delegates, run_pte

    model, data = TINY_MODELS["paper_cnn"](), tiny_data()
    fp32 = export_model(model, tmp_path / "m.pte", SHAPE, format="executorch", inputs=data.x_val)
    int8 = export_model(model, tmp_path / "q.pte", SHAPE, format="executorch-int8", calibration=data.x_train,
                        inputs=data.x_val)
    for result in (fp32, int8):
        assert result.path.read_bytes()[4:8] == b"ET12"  # ExecuTorch's FlatBuffer identifier
        assert pte_delegates(result.path) == ["XnnpackBackend"]
    with torch.no_grad():
        eager = model.eval()(data.x_val).numpy()
    got = run_pte(fp32.path, data.x_val)
    np.testing.assert_allclose(got, eager, atol=1e-5)
    assert fp32.max_abs_diff < 1e-5
    # int8 weights (a quarter of fp32's bytes; the tiny model's graph and scales are the rest of
    # the file), outputs close but not equal
    assert int8.path.stat().st_size < 0.7 * fp32.path.stat().st_size
    q = run_pte(int8.path, data.x_val)
    assert 0 < np.abs(q - eager).max() < 0.1 * np.abs(eager).max()
    assert (q.argmax(1) == eager.argmax(1)).mean() >= 0.9


def test_a_missing_executorch_is_one_line_and_exit_2(tmp_path):
    script = ("import sys; sys.modules['executorch'] = None\n"
              "from slimnas.cli import main\n"
              f"sys.argv = ['slimnas', 'export', {str(tmp_path)!r}, '--out', {str(tmp_path / 'm.pte')!r}, "
              "'--format', 'executorch']\n"
              "main()\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "executorch package" in lines[0] and "slimnas[edge]" in lines[0], lines
    assert not (tmp_path / "m.pte").exists()


def _lut_ops(path):
    from coremltools.converters.mil.mil import types

    from slimnas.export._coreml import read_program

    spec, program = read_program(path)
    ops = program.functions["main"].find_ops(op_type="constexpr_lut_to_dense")
    return spec, program, [(op, types.builtin_to_string(op.indices.dtype), types.builtin_to_string(op.lut.dtype))
                           for op in ops]


def test_core_ml_package_keeps_palettized_weights_as_lookup_tables(tmp_path):
    pytest.importorskip("coremltools", reason="coremltools not installed (pip install 'slimnas[edge]')")
    from slimnas.compress._palette import Palettizer
    from slimnas.export._coreml import WEIGHTS

    model = TINY_MODELS["paper_cnn"]()
    palettized = Palettizer(bits=4, granularity="channel").fit(model, input_shape=SHAPE).model_
    plain = export_model(model, tmp_path / "plain.mlpackage", SHAPE, format="coreml")
    pal = export_model(palettized, tmp_path / "pal.mlpackage", SHAPE, format="coreml")
    assert not pal.ran and (pal.path / "Manifest.json").is_file()  # a folder; Core ML predicts on macOS only
    spec, program, luts = _lut_ops(pal.path)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [d.name for d in spec.description.input] == ["input"]
    assert list(spec.description.input[0].type.multiArrayType.shape) == [1, *SHAPE]
    # the three layers whose table is smaller than their fp16 weights (25x25x3, 25x25x3, 10x125) hold
    # 4-bit indices into fp16 tables of the model's own values; the 25x1x5 first layer stays dense fp16
    assert sorted(tuple(op.outputs[0].shape) for op, _, _ in luts) == [(10, 125), (25, 25, 3), (25, 25, 3)]
    assert {(i, t) for _, i, t in luts} == {("uint4", "fp16")}
    weights = {f"p_{n.replace('.', '_')}_to_fp16_palettized": w.detach().numpy()  # coremltools' const names
               for n, w in palettized.named_parameters() if w.ndim >= 2}
    for op, _, _ in luts:
        idx, lut = op.indices.val, op.lut.val
        rows = idx.reshape(idx.shape[0], -1)
        decoded = np.take_along_axis(lut.reshape(lut.shape[0], -1), rows, axis=1).reshape(idx.shape)
        np.testing.assert_array_equal(decoded, weights[op.name].astype(np.float16))
    # the plain model has no tables; in the palettized file each of those layers' 2 bytes per weight
    # (fp16) became its packed 4-bit indices plus its tables, and a blob header (64 bytes, aligned) more
    assert _lut_ops(plain.path)[2] == []
    dense = 2 * sum(op.indices.val.size for op, _, _ in luts)
    palette = sum(-(-op.indices.val.size * 4 // 8) + 2 * op.lut.val.size for op, _, _ in luts)
    extra = (pal.path / WEIGHTS).stat().st_size - ((plain.path / WEIGHTS).stat().st_size - dense)
    assert palette <= extra <= palette + len(luts) * 128, (palette, extra)


def _slimnas(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "slimnas", *map(str, args)], capture_output=True, text=True,
                       timeout=600, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """A compress output of the tiny MLP, made from Python (it names no data to calibrate on)."""
    from slimnas.compress import CompressionPolicy, compress

    out = tmp_path_factory.mktemp("edge") / "c"
    compress(TINY_MODELS["paper_cnn"](), tiny_data(), CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0, out=out,
             latency_repeats=3)
    return out


@needs_executorch
def test_export_all_of_a_device_profile_lists_each_file_with_its_bytes_and_check(compressed, tmp_path):
    pytest.importorskip("coremltools", reason="coremltools not installed (pip install 'slimnas[edge]')")
    out = tmp_path / "phone"
    rc, stdout, stderr = _slimnas("export", compressed, "--model", "slimnas.testing._fixtures:paper_cnn",
                                  "--device-profile", "phone", "--format", "all", "--out", out)
    assert rc == 0, stderr
    rows = {r["format"]: r for r in json.loads((out / "exports.json").read_text())["formats"]}
    assert list(rows) == ["ort", "executorch", "executorch-int8", "coreml"]  # the phone's formats, in its order
    for name, suffix in (("ort", ".ort"), ("executorch", ".pte"), ("coreml", ".mlpackage")):
        row, path = rows[name], out / f"model-{name}{suffix}"
        assert row["file"] == path.name and path.exists() and path.name in stdout
        on_disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        assert row["bytes"] == on_disk and f"{on_disk:,}" in stdout  # the bytes shown are the file's
        if name == "coreml":
            assert row["max_abs_diff"] is None and row["check"].startswith("not run here")
        else:
            assert row["max_abs_diff"] < 1e-4 and row["check"].startswith("max |diff|")
    # int8 calibrates on the run's training data, which a compress output made from Python does not name
    assert rows["executorch-int8"]["file"] is None and "names its data" in rows["executorch-int8"]["not_written"]
    assert not (out / "model-executorch-int8.pte").exists()


def test_a_device_profile_refuses_a_format_it_does_not_load(compressed, tmp_path, cli_here):
    r = cli_here("export", compressed, "--model", "slimnas.testing._fixtures:paper_cnn",
                 "--device-profile", "mcu", "--format", "executorch", "--out", tmp_path / "m.pte")
    rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, lines
    assert "--format: expected a format the device profile 'mcu' loads (onnx-int8)" in lines[0]


def test_profiles_name_the_precisions_and_formats_a_device_runs():
    mcu, phone = read_profile("mcu"), read_profile("phone")
    check_profile(phone)  # its names resolve: registered precisions and export formats
    assert mcu.allowed_precisions == ("int8", "int4") and mcu.formats == ("onnx-int8",)
    assert {"int8", "palette4"} <= set(phone.allowed_precisions) and "int4" not in phone.allowed_precisions
    assert phone.formats == ("ort", "executorch", "executorch-int8", "coreml")
    # a default list is cut to what the device runs; a list the user named is refused, one line
    assert allowed_precisions(mcu, ("fp32", "int8"), given=False) == ("int8",)
    assert allowed_precisions(None, ("fp32", "int8")) == ("fp32", "int8")
    with pytest.raises(ConfigError, match="--precision: expected precisions the device profile 'mcu' runs "
                                          r"\(int8, int4\), got 'fp32'"):
        allowed_precisions(mcu, ("fp32", "int8"))
    with pytest.raises(ConfigError, match="weight_precisions: expected a list from"):
        check_profile(parse_profile({"name": "x", "weight_precisions": ["int5"]}))
    with pytest.raises(ConfigError, match="formats: expected export formats from"):
        check_profile(parse_profile({"name": "x", "formats": ["tflite"]}))
    # a profile written out reads back with both
    assert parse_profile(phone.to_dict()).formats == phone.formats


def test_compress_auto_on_a_device_refuses_a_precision_it_does_not_run(tmp_path, cli_here):
    r = cli_here("compress", "--model", "slimnas.testing._fixtures:mlp", "--auto", "--budget", "bytes<=50%",
                 "--device-profile", "mcu", "--precision", "fp32,int8", "--out", tmp_path / "c")
    rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, lines
    assert "--precision: expected precisions the device profile 'mcu' runs (int8, int4), got 'fp32'" in lines[0]
    assert not (tmp_path / "c").exists()
