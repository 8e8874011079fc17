"""Conformance of a registered metric: names and budgets round-trip, a real candidate measures to
a finite number, and a context that lacks what the metric needs gives a clear error."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from slimnas.config import DEFAULT_RUNTIME
from slimnas.errors import ConfigError
from slimnas.export import export_onnx
from slimnas.measure import Budget, MeasureContext, get_metric, measure_metrics
from slimnas.measure._metric import parse_objectives
from slimnas.testing._fixtures import SHAPE, TINY_MODELS, tiny_data

SETTINGS = {"runtime": DEFAULT_RUNTIME, "latency_batch": 1, "latency_repeats": 3, "threads": 1,
            "fitness_cost": "macs", "fitness_weight": 1e-5}


def check_metric(name: str) -> dict:
    """Run every check on the metric registered as ``name``; raises ``AssertionError`` naming the
    first that fails. Returns the value measured on a tiny model.

    1. Its declaration is complete: a key, a direction, when it is known.
    2. As an objective and in a budget it round-trips: ``parse(str(budget)) == budget`` for
       every unit it declares; relative budgets resolve against a reference.
    3. Malformed budgets on it are refused with :class:`ConfigError`.
    4. On a real model, its exported file and data it measures a finite number.
    5. On a context that lacks what it needs it raises :class:`ConfigError`, nothing else.
    """
    metric = get_metric(name)
    assert metric.name == name and metric.key, f"{name}: registered without a name or key"
    assert metric.direction in ("minimize", "maximize"), f"{name}: direction {metric.direction!r}"
    assert metric.when in ("model", "trained"), f"{name}: 'when' is {metric.when!r}"
    assert parse_objectives([name]) == (name,)
    op = "<=" if metric.direction == "minimize" else ">="
    for unit, scale in metric.units.items():
        budget = Budget.parse(f"{name}{op}2{unit}")
        assert budget.limit == 2 * scale and Budget.parse(str(budget)) == budget, f"{name}: {unit!r} does not round-trip"
    assert Budget.parse(f"{name}{op}50%").resolve({metric.key: 10.0}).limit == 5.0
    for bad in (f"{name}{op}", f"{name}{op}x", f"{name}{op}3furlongs", f"{name}=>3"):
        try:
            Budget.parse(bad)
        except ConfigError:
            continue
        raise AssertionError(f"{name}: the budget {bad!r} was accepted")

    model, data = TINY_MODELS["paper_cnn"](), tiny_data()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx", SHAPE)
        ctx = MeasureContext(model=model, input_shape=SHAPE, onnx=path, data=data, settings=dict(SETTINGS))
        value = measure_metrics([name], ctx)[metric.key]
    assert isinstance(value, (int, float)) and math.isfinite(value), f"{name}: measured {value!r}"
    try:
        measure_metrics([name], MeasureContext(settings=dict(SETTINGS)))
    except ConfigError:
        pass
    else:
        raise AssertionError(f"{name}: measured something on an empty context")
    return {"value": value}
