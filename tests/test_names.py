"""Names defined once and read from their registrations: a precision registered once is accepted
by device profiles, runtimes' checks and the quantizer's per-layer settings; a metric's table
label is its own declaration, found from its key."""

from __future__ import annotations

import pytest
from torch import nn

from slimnas.compress import quantize_model
from slimnas.config import DEFAULT_RUNTIME, precision_names, register_precision
from slimnas.config._names import precision_text, unregister_precision
from slimnas.config._profile import parse_profile
from slimnas.errors import ConfigError
from slimnas.measure import METRICS, RUNTIMES, BaseMetric, metric_label, register_metric


@pytest.fixture
def int3():
    register_precision("int3", bits=3, layer=True)
    yield "int3"
    unregister_precision("int3")


def test_the_default_runtime_is_a_registered_runtime():
    assert DEFAULT_RUNTIME in RUNTIMES and RUNTIMES.get(DEFAULT_RUNTIME).name == DEFAULT_RUNTIME


def test_a_precision_is_accepted_where_it_is_registered_and_refused_before():
    profile = {"name": "edge", "precisions": ["int3"]}
    with pytest.raises(ConfigError, match=r"profile.precisions.*\['fp32', 'fp16', 'bf16', 'int8', 'int4'"):
        parse_profile(profile)
    register_precision("int3", bits=3, layer=True)
    try:
        assert parse_profile(profile).precisions == ("int3",)
        # the low-bit precisions of the int4 and palette compressors, which write them per layer, come between
        assert precision_names("layer")[:5] == ("fp32", "fp16", "int8", "int4", "int2")
        assert precision_names("layer")[-1] == "int3"
        assert precision_names("simulated") == ("fp32", "int8")  # not simulated: the supernet does not offer it
        assert precision_text("layer").startswith("'fp32', 'fp16', 'int8', 'int4'")
        assert precision_text("layer").endswith("'palette8' or 'int3'")
    finally:
        unregister_precision("int3")
    assert "int3" not in precision_names()


def test_the_quantizer_names_the_registered_layer_precisions_in_its_refusal(int3):
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 4))
    with pytest.raises(ConfigError, match=r"quantize.layer_precision.1.*'fp32', 'fp16', 'int8', .* or 'int3'.*bf16"):
        quantize_model(model, (8,), mode="fp32", layer_precision={"1": "bf16"})


def test_a_quantize_step_names_the_registered_layer_precisions_in_its_refusal(int3):
    from slimnas.compress import COMPRESSORS

    step = COMPRESSORS.get("quantize")(mode="fp32", layer_precision={"1": "bf16"})
    with pytest.raises(ConfigError, match=r"quantize.layer_precision.1.*'fp32', 'fp16', 'int8', .* or 'int3'.*bf16"):
        step.validate()
    COMPRESSORS.get("quantize")(mode="fp32", layer_precision={"1": "int3"}).validate()


def test_a_metric_declares_its_own_label_and_its_test_split_twin_shares_it():
    @register_metric("val_energy")
    class Energy(BaseMetric):
        key, label = "val_energy_mj", "val energy mJ"

        def measure(self, ctx):
            return 1.0

    try:
        assert metric_label("val_energy_mj") == "val energy mJ"
        assert metric_label("test_energy_mj") == "test energy mJ"
    finally:
        METRICS.unregister("val_energy")
    assert metric_label("val_energy_mj") == "val energy mj"  # unregistered: the key in words
    assert [metric_label(k) for k in ("val_accuracy", "test_accuracy", "macs", "latency_ms", "params")] == [
        "val acc", "test acc", "MACs", "latency ms", "params"]
