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
