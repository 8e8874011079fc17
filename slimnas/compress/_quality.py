"""The figure that stands for a model's quality while compressing it: validation accuracy for
classification, the task's primary metric otherwise (R², mean average precision, perplexity,
a user task's own), with its direction.

Losses are compared on one scale whatever the metric: a metric whose best value is 1 and higher
is better (accuracy, R², mAP, F1) loses *points* (``0.02`` is 2 points); any other (MSE, MAE,
perplexity, loss) has no natural points scale, and its loss is the *relative* change in its bad
direction (``0.02``: 2% worse than before). So ``MAX_DROP`` and ``--auto``'s sensitivity
tolerances read the same for every task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimnas.tasks import Task


@dataclass(frozen=True)
class Quality:
    """What quality means for a task: the objective's name, its ``val_`` key, direction, the
    name shown, and whether its losses are relative (no points scale)."""

    metric: str = "accuracy"
    direction: str = "maximize"
    display: str = "accuracy"
    relative: bool = False

    @classmethod
    def of(cls, task: Task | None, metric: str | None = None) -> Quality:
        """``task``'s quality: its primary metric, or its metric named ``metric``."""
        from slimnas.measure._task_metrics import is_classification

        if is_classification(task):
            return cls()
        m = task.metric(metric or task.primary)
        return cls(m.name, m.direction, m.display, relative=not (m.direction == "maximize" and m.high == 1.0))

    @property
    def key(self) -> str:
        return f"val_{self.metric}"

    @property
    def test_key(self) -> str:
        return f"test_{self.metric}"

    @property
    def is_accuracy(self) -> bool:
        return self.metric == "accuracy"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b

    def sign(self) -> float:
        """+1 where higher is better, -1 where lower is."""
        return 1.0 if self.direction == "maximize" else -1.0

    def worse_by(self, before: float, after: float) -> float:
        """How much worse ``after`` is than ``before`` (negative: better): points as a fraction
        (accuracy, R², mAP), else the relative change (MSE, perplexity)."""
        change = self.sign() * (before - after)
        if self.relative:
            return change / max(abs(before), 1e-12)
        return change

    def amount(self, drop: float) -> str:
        """A loss from :meth:`worse_by` in words: ``3.1 points of validation R²`` or
        ``validation MSE 12.0% worse``."""
        if self.relative:
            return f"validation {self.display} {100 * drop:.1f}% {'lower' if self.direction == 'maximize' else 'higher'}"
        return f"{100 * drop:.1f} points of validation {self.display}"

    def limit(self, max_drop: float) -> str:
        """A tolerance in words: ``2 points`` or ``2% relative``."""
        return f"{100 * max_drop:g}% relative" if self.relative else f"{100 * max_drop:g} points"

    def best(self, values):
        return max(values) if self.direction == "maximize" else min(values)


def file_quality(data, onnx, *, quality: Quality | None = None) -> float:
    """The quality of an exported file on the validation split, in ONNX Runtime."""
    quality = quality or Quality.of(getattr(data, "task", None))
    if quality.is_accuracy:
        from slimnas.export import onnx_accuracy

        return onnx_accuracy(onnx, data.x_val, data.y_val)
    from slimnas.measure._task_metrics import task_scores

    return float(task_scores(data.task, None, onnx, data.x_val, data.y_val)[quality.metric])


def model_quality(data, model: nn.Module, *, quality: Quality | None = None) -> float:
    """The quality of an eager model (eval mode) on the validation split."""
    quality = quality or Quality.of(getattr(data, "task", None))
    if quality.is_accuracy:
        from slimnas.training import evaluate

        return evaluate(model, data.x_val, data.y_val)["accuracy"]
    from slimnas.measure._task_metrics import task_scores

    with torch.no_grad():
        return float(task_scores(data.task, model, None, data.x_val, data.y_val)[quality.metric])


def test_scores(data, onnx) -> dict[str, float]:
    """The test split's figures of an exported file: ``test_accuracy``, or every metric of the
    task as ``test_<name>``."""
    quality = Quality.of(getattr(data, "task", None))
    if quality.is_accuracy:
        from slimnas.export import onnx_accuracy

        return {"test_accuracy": onnx_accuracy(onnx, data.x_test, data.y_test)}
    from slimnas.measure._task_metrics import task_scores

    return {f"test_{k}": float(v) for k, v in task_scores(data.task, None, onnx, data.x_test, data.y_test).items()}


def check_task_outputs(model: nn.Module, data, field: str = "--model") -> None:
    """:func:`~slimnas.models.check_outputs` for the data's task: one row of class scores per
    sample for classification, else the output shape the task gives its head (a regression's
    ``(N, D)``, a multi-label model's ``(N, K)``, a language model's ``(N, L, V)``)."""
    from slimnas.models import check_outputs

    task = getattr(data, "task", None)
    if Quality.of(task).is_accuracy:
        return check_outputs(model, data.input_shape, data.n_classes, field)
    from slimnas.errors import ConfigError
    from slimnas.registry import user_failure

    shape = task.output_shape(data.n_classes, tuple(data.input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *data.input_shape))
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's model does not take this data
        raise ConfigError(field, f"a model taking inputs shaped {tuple(data.input_shape)}", user_failure(e)) from None
    finally:
        model.train(was_training)
    if shape is not None and (not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, *shape)):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(field, f"a model returning {(2, *shape)} for a batch of 2 (the {task.name} task's "
                          f"outputs: {task.exports})", f"outputs shaped {got}")


def with_task(data, task):
    """``data`` for ``task`` (a task name, ``file.py:callable`` or :class:`~slimnas.tasks.Task`;
    ``None``: the data's own task). Splits made without a task (classification's default) are
    checked by ``task``, which is fitted on the training targets and encodes every split; splits
    already made for another task are refused in one line."""
    if task is None:
        return data
    import dataclasses

    from slimnas.errors import ConfigError
    from slimnas.measure._task_metrics import is_classification, register_task_metrics
    from slimnas.tasks import load_task

    task = load_task(task)
    register_task_metrics(task)
    own = data.task
    if type(own) is type(task) and own.state() == task.state():
        return data
    if type(own) is type(task) and not is_classification(own):
        return data  # the splits' own fitted task
    if not is_classification(own):
        raise ConfigError("task", f"the data's own task ({own.name}) or splits made without a task",
                          f"{task.name} on data made for {own.name}")
    n = {}
    y = {}
    for split in ("train", "val", "test"):
        x_s, y_s = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        y[split] = task.check_targets(y_s, n=len(x_s), input_shape=tuple(x_s.shape[1:]), field=f"y_{split}")
        n[split] = len(x_s)
    task.fit(y["train"])
    return dataclasses.replace(data, task=task, n_classes=task.head_size(y["train"]),
                               **{f"y_{s}": task.encode(v) for s, v in y.items()})
