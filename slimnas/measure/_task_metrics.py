"""A task's metrics as measured metrics: ``r2``, ``mse``, ``mean_ap``, ... (and a user task's own)
are objectives and budgets like ``macs``, each with its task's direction, keyed ``val_<name>``
in a trial's metrics. They are measured as accuracy is: the exported file run in ONNX Runtime on
the validation split where there is one (the eager model otherwise), its outputs scored by the
run's task (``data.task``, :meth:`slimnas.tasks.Task.score`); one pass gives every metric of the
task, and the task's loss is ``val_loss``.

The built-in tasks' metrics are known by name from the start; a user task's are added when the
task is loaded (:func:`register_task_metrics`).
"""

from __future__ import annotations

import numpy as np
import torch

from slimnas.errors import ConfigError
from slimnas.measure._metric import PLAIN_UNITS, TASK_METRICS, BaseMetric, MeasureContext
from slimnas.tasks import TASKS, Task, TaskMetric
from slimnas.tasks._base import LOSS


def is_classification(task: Task | None) -> bool:
    """Whether ``task`` scores as slimnas always has (top-1 accuracy, cross-entropy): ``None``
    (data without a task) or the built-in ``classification``."""
    return task is None or type(task) is TASKS.get("classification")


def task_outputs(task: Task, model, onnx, x, *, batch_size: int = 1024) -> torch.Tensor:
    """The outputs a task scores: of the ONNX file in ONNX Runtime where there is one, else of
    the eager model in eval mode."""
    if onnx is not None:
        from slimnas.export import predict

        return torch.from_numpy(np.asarray(predict(onnx, x, batch_size=batch_size)))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def task_scores(task: Task, model, onnx, x, y) -> dict[str, float]:
    """Every metric of ``task`` on ``(x, y)`` (``y``: encoded targets)."""
    return task.score(task_outputs(task, model, onnx, x), y)


def validation_scores(ctx: MeasureContext) -> dict[str, float]:
    """Every metric of the data's task on the validation split, keyed ``val_<name>``, added to
    ``ctx.metrics`` (measured once per candidate)."""
    data = ctx.data
    if data is None:
        raise ConfigError("metric", "a candidate with its data to measure")
    task = data.task
    keys = [f"val_{m.name}" for m in task.metrics]
    if not all(k in ctx.metrics for k in keys if k != "val_loss"):
        if ctx.onnx is None and ctx.model is None:
            raise ConfigError("metric", "a candidate with its model or exported file to measure")
        scores = task_scores(task, ctx.model, ctx.onnx, data.x_val, data.y_val)
        for name, value in scores.items():
            ctx.metrics.setdefault(f"val_{name}", float(value))
    return ctx.metrics


class TaskScore(BaseMetric):
    """One metric of a task, measured by the run's task on the validation split."""

    unit, units = "", PLAIN_UNITS
    task_metric: TaskMetric = LOSS

    def measure(self, ctx: MeasureContext) -> float:
        task = getattr(ctx.data, "task", None)
        if task is None or self.name not in task.metric_names():
            what = "no task" if task is None else f"the {task.name} task ({', '.join(task.metric_names())})"
            raise ConfigError(f"metric.{self.name}", f"a run whose task reports {self.name} (its data has {what})")
        return validation_scores(ctx)[self.key]


def metric_class(m: TaskMetric) -> type[BaseMetric]:
    """The measured metric of the task metric ``m``."""
    return type(f"TaskScore_{m.name}", (TaskScore,), {
        "name": m.name, "key": f"val_{m.name}", "direction": m.direction, "label": f"val {m.display}",
        "description": m.description or f"{m.display} on the validation data", "task_metric": m})


def register_task_metrics(task: Task | type[Task]) -> None:
    """Make ``task``'s metrics objectives and budgets (its ``loss`` is the ``loss`` metric)."""
    for m in task.metrics:
        if m.name != LOSS.name and m.name != "accuracy":
            known = TASK_METRICS.get(m.name)
            if known is None or known.task_metric != m:
                TASK_METRICS[m.name] = metric_class(m)


def check_task_objectives(task: Task, names, field: str = "objectives") -> None:
    """Refuse (one line) a metric of ``names`` that is another task's: ``accuracy`` in a
    regression run, ``r2`` in a classification one."""
    own = set(task.metric_names())
    for name in names:
        if (name in TASK_METRICS or name == "accuracy") and name not in own:
            others = ", ".join(m for m in task.metric_names() if m != LOSS.name)
            raise ConfigError(field, f"metrics of the run's {task.name} task ({others}, loss) or measured ones "
                              f"(macs, params, bytes, latency_ms, ...): {name} is another task's", name)


for _name in TASKS.names():
    register_task_metrics(TASKS.get(_name))
