"""The built-in metrics: size and cost known from the model, quality and bytes from the trained
model and its exported file."""

from __future__ import annotations

from pathlib import Path

from slimnas.errors import ConfigError
from slimnas.export import onnx_accuracy
from slimnas.measure._counts import count_macs, count_params
from slimnas.measure._metric import (
    BYTE_UNITS,
    COUNT_UNITS,
    BaseMetric,
    MeasureContext,
    get_metric,
    measure_metrics,
    register_metric,
)
from slimnas.measure._task_metrics import is_classification, validation_scores
from slimnas.training import evaluate


def _need(ctx: MeasureContext, what: str, metric: str):
    value = getattr(ctx, what)
    if value is None:
        raise ConfigError(f"metric.{metric}", f"a candidate with its {what} to measure")
    return value


@register_metric("params")
class Params(BaseMetric):
    unit, units, when = "count", COUNT_UNITS, "model"
    description = "parameters of the model"

    def measure(self, ctx):
        return count_params(_need(ctx, "model", self.name))


@register_metric("macs")
class MACs(BaseMetric):
    unit, units, when = "count", COUNT_UNITS, "model"
    label = "MACs"
    description = "multiply-accumulates per sample (PyTorch's FLOP counter / 2)"

    def measure(self, ctx):
        return count_macs(_need(ctx, "model", self.name), ctx.input_shape)


@register_metric("bytes")
class FileBytes(BaseMetric):
    unit, units = "bytes", BYTE_UNITS
    description = "bytes of the exported ONNX file"

    def measure(self, ctx):
        onnx = _need(ctx, "onnx", self.name)
        return len(onnx) if isinstance(onnx, bytes) else Path(onnx).stat().st_size


@register_metric("accuracy")
class Accuracy(BaseMetric):
    key, direction, unit = "val_accuracy", "maximize", "fraction"
    label = "val acc"
    description = "validation accuracy (of the exported file in ONNX Runtime where there is one)"

    def measure(self, ctx):
        data = _need(ctx, "data", self.name)
        if not is_classification(getattr(data, "task", None)):
            raise ConfigError("metric.accuracy", "a classification run (this run's task is "
                              f"{data.task.name}: its metrics are {', '.join(data.task.metric_names())})")
        if ctx.onnx is not None:
            return onnx_accuracy(ctx.onnx, data.x_val, data.y_val)
        return evaluate(_need(ctx, "model", self.name), data.x_val, data.y_val)["accuracy"]


@register_metric("loss")
class Loss(BaseMetric):
    key, unit = "val_loss", "loss"
    description = "validation cross-entropy"

    def measure(self, ctx):
        data = _need(ctx, "data", self.name)
        if not is_classification(getattr(data, "task", None)):
            return validation_scores(ctx)["val_loss"]
        return evaluate(_need(ctx, "model", self.name), data.x_val, data.y_val)["loss"]


@register_metric("fitness")
class Fitness(BaseMetric):
    """``val_loss + weight * cost``, the classic scalarised NAS fitness (``fitness:`` in a config)."""

    unit = "loss"
    description = "val_loss + weight x cost (config: fitness.cost, fitness.weight)"

    def measure(self, ctx):
        cost = ctx.settings.get("fitness_cost", "macs")
        measure_metrics(["loss", cost], ctx)
        return ctx.metrics["val_loss"] + ctx.settings.get("fitness_weight", 1e-5) * ctx.metrics[get_metric(cost).key]
