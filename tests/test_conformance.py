"""Every registered strategy, compressor, metric, family and data format (built-in or plug-in) passes
the conformance suite of :mod:`slimnas.testing`; entries that break the contract fail it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import optuna
import pytest
import torch
from torch import nn

from slimnas.compress import (
    COMPRESSORS,
    IMPORTANCES,
    BaseCompressor,
    list_compressors,
    register_importance,
)
from slimnas.data import FORMATS
from slimnas.export import EXPORT_FORMATS
from slimnas.export._onnx_formats import OnnxFp32
from slimnas.measure import (
    METRICS,
    RUNTIMES,
    BaseLatency,
    BaseMetric,
    MeasureContext,
    list_metrics,
    measure_metrics,
)
from slimnas.spaces import FAMILIES, BaseFamily, Key, list_families
from slimnas.strategies import STRATEGIES, BaseStrategy
from slimnas.testing import (
    check_compressor,
    check_data_format,
    check_export_format,
    check_family,
    check_importance,
    check_metric,
    check_runtime,
    check_strategy,
)


@pytest.mark.parametrize("name", list_compressors())
def test_compressor_conformance(name):
    checked = check_compressor(name)
    assert set(checked) == {"residual_cnn", "mlp", "gru", "paper_cnn"}


@pytest.mark.parametrize("name", list_metrics())
def test_metric_conformance(name):
    assert math.isfinite(check_metric(name)["value"])


@pytest.mark.parametrize("name", IMPORTANCES.names())
def test_importance_conformance(name):
    assert check_importance(name)["needs_gradients"] == (name == "taylor")


@pytest.mark.parametrize("name", RUNTIMES.names())
def test_runtime_conformance(name):
    result = check_runtime(name)
    assert result["times"] == ("file" if name.startswith("onnxruntime") else "model")
    assert result["median_ms"] is not None or "cuda" in name


@pytest.mark.parametrize("name", FORMATS.names())
def test_data_format_conformance(name):
    assert {"empty", "not of the format", "truncated"} <= set(check_data_format(name)["refused"])


@pytest.mark.parametrize("name", list_families())
def test_family_conformance(name, tmp_path):
    """Each family describes its own models: a search on it and its report run (resnet, mobilenet
    and transformer searches crashed in the front table with KeyError: 'cell')."""
    result = check_family(name, tmp_path)
    assert result["summary"] and result["front"]


@pytest.fixture
def registered():
    """Register entries for one test and remove them after (the registries stay as they were)."""
    added = []

    def add(registry, name, cls):
        registry.register(name)(cls)
        cls.name = name
        added.append((registry, name))
        return cls

    yield add
    for registry, name in added:
        registry.unregister(name)


def test_a_strategy_that_ignores_its_seed_fails(registered, tmp_path):
    class Unseeded(BaseStrategy):
        def sampler(self, ctx):
            return optuna.samplers.RandomSampler()  # a fresh random seed every time

    registered(STRATEGIES, "unseeded", Unseeded)
    with pytest.raises(AssertionError, match="same seed proposed different candidates"):
        check_strategy("unseeded", tmp_path)


def test_a_compressor_that_breaks_its_reference_fails(registered):
    class OffByOne(BaseCompressor):
        conformance_options = {}

        def __init__(self) -> None:
            pass

        def _fit(self, model, data, teacher, input_shape):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1e-2)
            return model

        def reference_model(self, original):
            return original  # claims to leave the model as it was

    registered(COMPRESSORS, "off-by-one", OffByOne)
    with pytest.raises(AssertionError, match="differs from its reference"):
        check_compressor("off-by-one")


def test_a_compressor_that_changes_the_callers_model_fails(registered):
    class InPlace(BaseCompressor):
        def __init__(self) -> None:
            pass

        def fit(self, model, data=None, *, teacher=None, input_shape=None):
            if not isinstance(model, torch.nn.Module):
                return super().fit(model, data, teacher=teacher, input_shape=input_shape)
            with torch.no_grad():
                next(model.parameters()).zero_()
            self.model_ = model
            return self

        def _fit(self, model, data, teacher, input_shape):  # pragma: no cover - fit is overridden
            return model

    registered(COMPRESSORS, "in-place", InPlace)
    with pytest.raises(AssertionError, match="changed the caller's"):
        check_compressor("in-place")


def test_a_metric_that_measures_nan_or_crashes_on_an_empty_context_fails(registered):
    class NotANumber(BaseMetric):
        def measure(self, ctx):
            return float("nan")

    class Fragile(BaseMetric):
        def measure(self, ctx):
            if ctx.model is None:
                raise RuntimeError("no model")
            return 1.0

    registered(METRICS, "nan_metric", NotANumber)
    NotANumber.key = "nan_metric"
    with pytest.raises(AssertionError, match="measured nan"):
        check_metric("nan_metric")
    registered(METRICS, "fragile_metric", Fragile)
    Fragile.key = "fragile_metric"
    with pytest.raises(RuntimeError):  # not the one clear ConfigError the contract asks for
        check_metric("fragile_metric")


def test_an_export_format_that_does_not_read_its_file_fails(registered):
    class Echo(OnnxFp32):
        """Writes a file, then runs a fresh build of the architecture instead of reading it."""

        description = "echo"

        def run(self, path, x, ctx):
            with torch.no_grad():
                return ctx.rebuild().eval()(x).numpy()

    registered(EXPORT_FORMATS, "echo", Echo)
    with pytest.raises(Exception, match="differ from the eager model's|does not compute what write"):
        check_export_format("echo")


@dataclass(frozen=True)
class ToySpec:
    family: ClassVar[str] = "toy"
    width: int = 8


class ToyFamily(BaseFamily):
    """A plug-in family with no summary of its own."""

    spec = ToySpec
    keys = {"width": Key(int, "integers >= 1", [4, 8], lambda v: v >= 1)}

    def sample(self, draw):
        return ToySpec(width=draw("width"))

    def build(self, spec, input_shape, n_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), spec.width), nn.ReLU(),
                             nn.Linear(spec.width, n_classes))


def test_a_plugin_family_without_a_summary_is_described_by_its_fields(registered, tmp_path):
    registered(FAMILIES, "toy", ToyFamily)
    result = check_family("toy", tmp_path)
    assert result["summary"] in ("toy width=4", "toy width=8") and result["front"].startswith("toy width=")


def test_a_family_whose_summary_breaks_a_table_row_fails(registered, tmp_path):
    class TwoLines(ToyFamily):
        def summary(self, spec):
            return f"toy\n{spec.width}"

    registered(FAMILIES, "toy", TwoLines)
    with pytest.raises(AssertionError, match="toy: summary"):
        check_family("toy", tmp_path)


class _Recording(BaseLatency):
    """A plug-in runtime (not an ONNX Runtime subclass) that records what it was given to time."""

    seen: ClassVar[list] = []

    def prepare(self, model, input_shape):
        type(self).seen.append(model)
        return lambda: None


def test_a_runtime_that_times_files_is_given_the_file_and_one_that_declares_nothing_the_model(registered, tmp_path):
    """What a runtime times is its own declaration (``times``), not whether it is an ONNX Runtime
    class: a plug-in that times files gets the candidate's exported file; by default, the model."""
    from slimnas.export import export_onnx
    from slimnas.testing import SHAPE, TINY_MODELS

    class FileRuntime(_Recording):
        times = "file"

    class ModelRuntime(_Recording):
        pass

    model = TINY_MODELS["mlp"]()
    path = export_onnx(model, tmp_path / "m.onnx", SHAPE)
    for name, cls in (("rec-file", FileRuntime), ("rec-model", ModelRuntime)):
        registered(RUNTIMES, name, cls)
        cls.seen = []
        ctx = MeasureContext(model=model, input_shape=SHAPE, onnx=path,
                             settings={"runtime": name, "latency_batch": 1, "latency_repeats": 3, "threads": 1})
        measure_metrics(["latency_ms"], ctx)
        assert check_runtime(name)["times"] == cls.times
        assert cls.seen[0] == path if cls is FileRuntime else cls.seen[0] is model, cls.seen


def test_a_runtime_that_declares_an_unknown_target_fails(registered):
    class Vague(_Recording):
        times = "eager"

    registered(RUNTIMES, "vague", Vague)
    with pytest.raises(AssertionError, match="'times' is 'eager'"):
        check_runtime("vague")


def test_an_importance_is_given_gradients_when_it_declares_it_needs_them_and_checked_for_the_declaration():
    """Whether pruning accumulates loss gradients is the importance's own declaration, not its
    name: a plug-in Taylor criterion under another name gets them; one that reads gradients but
    does not declare it fails its conformance check."""
    import torch_pruning as tp

    register_importance("taylor-plugin", needs_gradients=True)(lambda: tp.importance.TaylorImportance())
    IMPORTANCES.register("taylor-undeclared")(lambda: tp.importance.TaylorImportance())
    try:
        assert check_importance("taylor-plugin")["needs_gradients"] is True
        with pytest.raises(AssertionError, match="register it with needs_gradients=True"):
            check_importance("taylor-undeclared")
    finally:
        IMPORTANCES.unregister("taylor-plugin")
        IMPORTANCES.unregister("taylor-undeclared")
