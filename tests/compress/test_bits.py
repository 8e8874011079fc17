"""Bits per weight: the per-layer precision reports show, the effective-bits metric measured on
the shipped file, per-layer mixed precision below 8 bits, and its allocation under a budget."""

from __future__ import annotations

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
             # 4-bit codes + one 16-entry fp32 table (64 bytes) + the constants that unpack them in the
             # graph (its shape, shift amounts, a mask: 35 bytes): 4.5 bits and 0.27 more
             "palette4": Palettizer(bits=4).fit(layer, input_shape=(64,)).onnx_}
    want = {"fp32": 32.0, "fp16": 16.0, "int4": 5.0, "palette4": 4.5 + 8 * 35 / 1024}
    assert {k: effective_bits(f) for k, f in files.items()} == want
    assert [(lay.op, lay.weights) for lay in layer_bits(files["int4"])] == [("MatMulNBits", 1024)]
    budget = Budget.parse("bits<=4.8")
    for name, data in files.items():
        metrics = evaluate_artifact(Artifact(layer, data, (64,)), None, ["bits", "bytes"])
        assert metrics["bits"] == want[name] and metrics["bytes"] == len(data)
        assert budget.is_met(metrics) == (name == "palette4")
