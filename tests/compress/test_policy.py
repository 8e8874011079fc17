"""Per-layer policies, artifacts and their measurements, MAC targets, sensitivity."""

from __future__ import annotations

import json

import pytest
from compress_models import MODELS, SHAPE

from slimnas.compress import (
    CompressionPolicy,
    SensitivityResult,
    analyze_sensitivity,
    apply_policy,
    list_prunable_layers,
    measure_artifact,
    scale_to_macs,
)
from slimnas.errors import ConfigError
from slimnas.export._session import ort_session
from slimnas.measure import count_macs


def test_policy_round_trips_through_json_and_is_hashable():
    p = CompressionPolicy.of(quantize={"mode": "int8", "layer_precision": {"4": "fp16"}},
                             prune={"ratio": 0.0, "layer_ratios": {"2": 0.5, "0": 0.25}, "importance": "taylor"},
                             lowrank={"layer_ratios": {"7": 0.5}}, cluster={"n_clusters": 16}, distill=True)
    again = CompressionPolicy.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p and hash(again) == hash(p)
    # steps run in the registry's order whatever order they were given in; quantization last
    assert [s.compressor for s in p.steps] == ["prune", "lowrank", "cluster", "quantize"]
    assert p.options("prune")["layer_ratios"] == {"0": 0.25, "2": 0.5}
    assert p != CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"0": 0.25}})


def test_policy_of_the_earlier_fixed_form_is_read():
    old = {"prune": {"0": 0.5}, "importance": "taylor", "precision": {"4": "int8"}, "default_precision": "fp32",
           "lowrank": {}, "cluster": 0, "distill": True, "temperature": 4.0, "alpha": 0.9, "finetune_lr": 0.0}
    p = CompressionPolicy.from_dict(old)
    assert [s.compressor for s in p.steps] == ["prune", "quantize"] and p.distill
    assert p.options("prune") == {"ratio": 0.0, "importance": "taylor", "layer_ratios": {"0": 0.5}}


@pytest.mark.parametrize("steps, field", [
    ({"prune": {"layer_ratios": {"0": 1.5}}}, "compression.prune.layer_ratios.0"),
    ({"prune": {"ratio": 0.1, "importance": "magic"}}, "compression.prune.importance"),
    ({"prune": {"ratio": 0.1, "speed": 2}}, "compression.prune.speed"),
    ({"quantize": {"layer_precision": {"0": "int3"}}}, "compression.quantize.layer_precision.0"),
    ({"quantize": {"mode": "bf16"}}, "compression.quantize.mode"),
    ({"lowrank": {"layer_ratios": {"0": 0}}}, "compression.lowrank.layer_ratios.0"),
    ({"cluster": {"n_clusters": 1}}, "compression.cluster.n_clusters"),
    ({"sharpen": {}}, "compression.sharpen"),
])
def test_policy_validation_names_the_field(steps, field):
    with pytest.raises(ConfigError) as e:
        CompressionPolicy.of(**steps)
    assert str(e.value).startswith(field + ":"), str(e.value)
    with pytest.raises(ConfigError, match="compression.extra"):
        CompressionPolicy.from_dict({"steps": [], "extra": 1})
    with pytest.raises(ConfigError, match="compression.steps"):  # the file-writing step runs last
        CompressionPolicy(steps=(("quantize", {"mode": "int8"}), ("prune", {"ratio": 0.5})))


def test_list_prunable_layers():
    layers = list_prunable_layers(MODELS["paper_cnn"](), SHAPE)
    assert [(layer.name, layer.out_channels) for layer in layers] == [("0", 25), ("2", 25), ("4", 25)]
    total = count_macs(MODELS["paper_cnn"](), SHAPE)
    assert sum(layer.macs for layer in layers) == total - 1250  # all but the classifier
    gru = list_prunable_layers(MODELS["gru"](), SHAPE)
    assert [(g.name, g.kind, g.out_channels) for g in gru] == [("rnn", "GRU", 12)]


@pytest.mark.parametrize("name", ["paper_cnn", "residual_cnn"])
def test_scale_to_macs_hits_the_target(name):
    model = MODELS[name]()
    base = count_macs(model, SHAPE)
    ratios = {layer.name: 0.5 for layer in list_prunable_layers(model, SHAPE)}
    scaled, macs = scale_to_macs(model, ratios, SHAPE, base // 2)
    assert 0.4 * base <= macs <= 0.5 * base
    assert len({round(v, 6) for v in scaled.values()}) == 1  # one multiplier for equal ratios
    from slimnas.compress import StructuredPruner

    assert count_macs(StructuredPruner(ratio=0.0, layer_ratios=scaled).fit(model, input_shape=SHAPE).model_,
                      SHAPE) == macs


def test_apply_policy_and_measure_artifact(data, trained_cnn):
    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"0": 0.3, "2": 0.3}},
                                  lowrank={"layer_ratios": {"4": 0.5}},
                                  quantize={"mode": "int8", "layer_precision": {"7": "fp32"}}, distill=True)
    art = apply_policy(trained_cnn, policy, data, epochs=1)
    assert art.model[0].out_channels < 25
    m = measure_artifact(art, data, repeats=5)
    for key in ("val_accuracy", "test_accuracy", "params", "macs", "bytes", "weight_bytes", "overhead_bytes",
                "latency_ms", "latency_ms_b1", "latency_ms_b64"):
        assert key in m, key
    assert m["macs"] < count_macs(trained_cnn, SHAPE)
    assert m["bytes"] == len(art.onnx) == m["weight_bytes"] + m["overhead_bytes"]
    # the accuracy is that of the file: its own logits in ONNX Runtime, not the eager model's
    logits = ort_session(art.onnx).run(None, {"input": data.x_test.numpy()})[0]
    assert m["test_accuracy"] == pytest.approx(float((logits.argmax(1) == data.y_test.numpy()).mean()))
    assert m["test_accuracy"] > 0.3


def test_apply_policy_with_clustering_reports_storage(data):
    art = apply_policy(MODELS["mlp"](), CompressionPolicy.of(cluster={"n_clusters": 4}), data, epochs=0)
    m = measure_artifact(art, data, splits=("val",), latency_batches=(1,), repeats=3)
    assert m["storage_bytes"] < 0.3 * m["weight_bytes"]


def test_sensitivity_analysis(data, trained_cnn):
    res = analyze_sensitivity(trained_cnn, data, ratios=(0.2, 0.8))
    assert list(res.curves) == ["0", "2", "4"]
    for points in res.curves.values():
        (r1, a1, m1), (r2, a2, m2) = points
        assert m2 < m1 < res.baseline_macs
        assert 0 <= a2 <= 1
    assert any(res.baseline - p[1] > 0.05 for pts in res.curves.values() for p in pts)
    assert SensitivityResult.from_dict(json.loads(json.dumps(res.to_dict()))) == res
    from slimnas.report._explain import sensitivity_table

    assert sensitivity_table(res).row_count == 3
    assert 0 <= res.max_ratio("0", max_drop=0.5) <= 0.8
