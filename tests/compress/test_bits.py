"""Bits per weight: the per-layer precision reports show, the effective-bits metric measured on
the shipped file, per-layer mixed precision below 8 bits, and its allocation under a budget."""

from __future__ import annotations

import pytest

from slimnas.compress import CompressionPolicy, apply_policy
from slimnas.compress._apply import layer_decisions
from slimnas.report._explain import policy_summary
from slimnas.testing import TINY_MODELS, tiny_data


def test_layer_decisions_show_the_low_bit_precision_a_step_writes():
    model, data = TINY_MODELS["paper_cnn"](), tiny_data()
    for policy, want in ((CompressionPolicy.of(int4={"group_size": 16}), "int4"),
                         (CompressionPolicy.of(palette={"bits": 2, "layers": ["0", "7"]}), "palette2")):
        art = apply_policy(model, policy, data, epochs=0)
        rows = layer_decisions(model, art)
        shown = {r["layer"]: r["precision"] for r in rows}
        layers = policy.steps[0].options.get("layers") or list(shown)
        assert all(shown[n] == (want if n in layers else "fp32") for n in shown), shown
        summary = policy_summary({"policy": policy.to_dict(), "layers": rows})
        assert f"{want} {len(layers)}/{len(rows)}" in summary and "bits" not in summary, summary


def test_bits_are_read_from_the_file_with_scales_and_tables_amortised():
    import torch

    from slimnas.compress import Palettizer, WeightOnlyQuantizer, quantize_model
    from slimnas.measure import Artifact, Budget, evaluate_artifact
    from slimnas.measure._bits import effective_bits, layer_bits

    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 16).eval()  # 1,024 weights
    files = {"fp32": quantize_model(layer, (64,), mode="fp32"), "fp16": quantize_model(layer, (64,), mode="fp16"),
             # 4-bit codes (512 bytes) + one fp32 scale per 32 weights (128 bytes): 5 bits, not 4
             "int4": WeightOnlyQuantizer(bits=4, group_size=32).fit(layer, input_shape=(64,)).onnx_,
             # 4-bit codes (ONNX's UINT4, in the weight's shape: no unpacking constants) + one 16-entry
             # fp16 table (32 bytes): 4.25 bits
             "palette4": Palettizer(bits=4).fit(layer, input_shape=(64,)).onnx_}
    want = {"fp32": 32.0, "fp16": 16.0, "int4": 5.0, "palette4": 4.25}
    assert {k: effective_bits(f) for k, f in files.items()} == want
    assert [(lay.op, lay.weights) for lay in layer_bits(files["int4"])] == [("MatMulNBits", 1024)]
    budget = Budget.parse("bits<=4.8")
    for name, data in files.items():
        metrics = evaluate_artifact(Artifact(layer, data, (64,)), None, ["bits", "bytes"])
        assert metrics["bits"] == want[name] and metrics["bytes"] == len(data)
        assert budget.is_met(metrics) == (name == "palette4")


def test_one_file_holds_each_layer_at_its_own_precision_down_to_2_bits(trained_cnn, data):
    import numpy as np
    import torch

    from slimnas.export import predict
    from slimnas.measure._bits import layer_bits

    mixed = {"0": "fp16", "2": "int8", "4": "palette2", "7": "int4"}
    art = apply_policy(trained_cnn, CompressionPolicy.of(quantize={"mode": "fp32", "layer_precision": mixed}), data,
                       epochs=0)
    layers = layer_bits(art.onnx)
    assert [lay.op for lay in layers] == ["Conv", "Conv", "Conv", "MatMulNBits"]  # the Linear runs at 4 bits
    bits = [lay.bits for lay in layers]
    assert bits[0] == 16 and 8 < bits[1] < 9 and 2 < bits[2] < 3 and 4 < bits[3] < 6, bits
    assert art.report["quantize"]["run_at_low_bits"] == ["7"] and art.report["quantize"]["stored_at_low_bits"] == ["4"]
    with torch.no_grad():  # the eager model computes with the encoded weights: only int8 activations differ
        assert np.mean(predict(art.onnx, data.x_val).argmax(1) == art.model(data.x_val).argmax(1).numpy()) > 0.95
    assert [r["precision"] for r in layer_decisions(trained_cnn, art)] == list(mixed.values())


def test_the_allocation_keeps_more_bits_on_the_more_sensitive_layer():
    from slimnas.compress._bitalloc import PrecisionSensitivity, allocate_precision

    def row(drop4, drop2):  # 1,000 weights each: int8 saves 3,000 weight bytes, palette4 3,500, palette2 3,750
        return {"int8": {"val_accuracy": 0.9, "bytes": -2900, "weight_bytes": -3000},
                "palette4": {"val_accuracy": 0.9 - drop4, "bytes": -3400, "weight_bytes": -3500},
                "palette2": {"val_accuracy": 0.9 - drop2, "bytes": -3650, "weight_bytes": -3750}}

    sens = PrecisionSensitivity(0.9, 9000, 8000, 2000, {"a": 1000, "b": 1000},
                                {"a": row(0.20, 0.40), "b": row(0.001, 0.002)})
    precisions = ["fp32", "int8", "palette4", "palette2"]
    # 5 bits a weight on average: one layer at 8 bits allows the other at 2
    alloc = allocate_precision(sens, precisions, {"bits": 5.0})
    assert alloc.precision == {"a": "int8", "b": "palette2"} and alloc.met and alloc.estimated["bits"] == 5.0
    assert "kept" not in alloc.reasons["a"]["reason"] and alloc.reasons["a"]["by_precision"]["palette4"]["drop"] == 0.2
    # the roles swapped, the allocation follows them; a loose budget keeps fp32 with the reason said
    swapped = PrecisionSensitivity(0.9, 9000, 8000, 2000, {"a": 1000, "b": 1000},
                                   {"a": row(0.001, 0.002), "b": row(0.20, 0.40)})
    assert allocate_precision(swapped, precisions, {"bits": 5.0}).precision == {"a": "palette2", "b": "int8"}
    loose = allocate_precision(sens, precisions, {"bits": 32.0})
    assert loose.precision == {"a": "fp32", "b": "fp32"} and loose.reasons["a"]["reason"].startswith("kept at fp32")
    # out of reach: every layer at its cheapest, said
    assert not allocate_precision(sens, precisions, {"bits": 1.0}).met


def test_auto_meets_a_bits_budget_in_the_shipped_file_and_says_why_per_layer(trained_cnn, data, tmp_path):
    import json

    from slimnas.measure._bits import effective_bits
    from slimnas.study import auto_compress

    res = auto_compress(trained_cnn, data, budget=["bits<=4.5"], out=tmp_path, n_trials=2, finetune_epochs=0,
                        final_epochs=0, refine_epochs=0, latency_repeats=3)
    shipped = (tmp_path / "model.onnx").read_bytes()
    assert effective_bits(shipped) <= 4.5 and res.feasible
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["after"]["bits"] == effective_bits(shipped) and report["after"]["bytes"] == len(shipped)
    assert report["before"]["bits"] == 32.0
    chosen = report["policy"]["steps"][-1]["options"]["layer_precision"]
    assert len(set(chosen.values())) > 1 and set(chosen.values()) <= {"fp32", "fp16", "int8", "int4", "palette8",
                                                                      "palette4", "palette2"}
    allocation = report["precision_allocation"]
    assert allocation["met"] and allocation["precision"] == chosen
    # each palettized layer was clustered to its palette's size first, so the fine-tune trained its table
    palettes = {n: 2 ** int(p.removeprefix("palette")) for n, p in chosen.items() if p.startswith("palette")}
    cluster = next((s["options"] for s in report["policy"]["steps"] if s["compressor"] == "cluster"), {})
    assert cluster.get("layer_clusters", {}) == palettes
    assert set(allocation["sensitivity"]["layers"]) == set(chosen)
    from slimnas.report._compress import compress_report_data, render_compress_markdown

    shown = compress_report_data(tmp_path)  # the compress report (slimnas report) says why, per layer
    assert set(shown["precision_reasons"]) == set(chosen) and "## Why each layer has its precision" in \
        render_compress_markdown(shown)
    assert next(r for r in shown["rows"] if r["key"] == "bits")["after"] <= 4.5
    policy = json.loads((tmp_path / "policy.json").read_text())
    for row in policy["layers"]:
        assert row["precision"] == chosen[row["layer"]]
        assert row["precision_reason"] and set(row["precision_sensitivity"]) == set(allocation["sensitivity"]["layers"][
            row["layer"]]) | {"fp32"}


def test_auto_on_the_command_line_meets_a_bytes_budget_with_the_files_real_bytes(trained_cnn, tmp_path):
    import json

    import torch
    from typer.testing import CliRunner

    from slimnas.cli import build_app

    torch.save(trained_cnn.state_dict(), tmp_path / "cnn.pt")
    out = tmp_path / "auto"
    result = CliRunner().invoke(build_app(), [
        "compress", "--model", "slimnas.models:mnist1d_paper_cnn", "--weights", str(tmp_path / "cnn.pt"),
        "--auto", "--budget", "bytes<=4500", "--precision", "fp32,int8,int4,palette4,palette2", "--n-trials", "2",
        "--finetune-epochs", "0", "--final-epochs", "0", "--no-hardware-aware", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "precision per layer under the size budget" in " ".join(result.output.split())
    report = json.loads((out / "report.json").read_text())
    size = (out / "model.onnx").stat().st_size
    assert report["after"]["bytes"] == size <= 4500 < report["before"]["bytes"]
    assert report["precision_allocation"]["estimated"]["bytes"] == size  # the allocation's file is the shipped one
    rows = json.loads((out / "policy.json").read_text())["layers"]
    assert all(r["precision"] in ("fp32", "int8", "int4", "palette4", "palette2") and r["precision_reason"] for r in rows)


def test_the_joint_search_takes_precisions_below_8_bits_and_a_bits_budget():
    import pytest

    from slimnas.compress._space import CompressionSpace
    from slimnas.errors import ConfigError
    from slimnas.measure import Budget

    space = CompressionSpace.from_config({"precision": ["int8", "int4", "palette4"]})
    assert space.params["precision"].choices() == ["int8", "int4", "palette4"]
    with pytest.raises(ConfigError, match="space.compression.precision"):
        CompressionSpace.from_config({"precision": ["int8", "int3"]})
    assert Budget.parse("bits<=4.5", "budget").metric == "bits"


def test_precision_sensitivity_of_a_regressor_reads_its_r2_and_its_loss_not_a_classifiers():
    """A regressor's layers are ranked by its own metric and loss (R², MSE on the standardised
    targets), read from each file in ONNX Runtime: top-1 accuracy and cross-entropy of its one
    output column were what the allocation read before, a constant 0 and a meaningless loss."""
    import torch

    from slimnas.compress import quantize_model
    from slimnas.compress._bitalloc import precision_sensitivity
    from slimnas.data import load_dataset
    from slimnas.measure._task_metrics import task_outputs

    data = load_dataset("diabetes")
    torch.manual_seed(0)
    width = data.x_train[0].numel()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(width, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        data.task.loss(model(data.x_train), data.y_train).backward()
        opt.step()
    model.eval()
    sens = precision_sensitivity(model, data, ["int8", "palette2"])
    out = task_outputs(data.task, None, quantize_model(model, data.input_shape, mode="fp32"), data.x_val)
    scores = data.task.score(out, data.y_val)
    assert 0.2 < sens.baseline == pytest.approx(scores["r2"], abs=1e-5)
    assert sens.baseline_loss == pytest.approx(float(data.task.loss(out, data.y_val)), rel=1e-4)
    for row in sens.layers.values():  # palette2 costs R² (and adds loss) on at least one layer
        assert row["palette2"]["val_loss"] >= sens.baseline_loss - 1e-3
    assert max(sens.baseline - row["palette2"]["val_accuracy"] for row in sens.layers.values()) > 0.005


def test_int8_layers_and_a_uint4_palette_share_one_opset_21_file(trained_cnn, data):
    import numpy as np
    import onnx
    import torch

    from slimnas.export import predict

    mixed = {"2": "int8", "4": "palette4"}
    art = apply_policy(trained_cnn, CompressionPolicy.of(quantize={"mode": "fp32", "layer_precision": mixed}), data,
                       epochs=0)
    proto = onnx.ModelProto.FromString(art.onnx)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [21]  # converted after int8
    assert any(i.data_type == onnx.TensorProto.UINT4 for i in proto.graph.initializer)
    assert any(n.op_type == "DequantizeLinear" for n in proto.graph.node)
    with torch.no_grad():  # only the int8 activations differ from the eager model with the encoded weights
        assert np.mean(predict(art.onnx, data.x_val).argmax(1) == art.model(data.x_val).argmax(1).numpy()) > 0.95
