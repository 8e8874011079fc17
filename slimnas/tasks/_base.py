"""A task: what a model is trained to do and how it is scored.

A task is a registered class (:func:`register_task`), one file each. It says how targets are
read and checked (:meth:`Task.check_targets`, one-line errors), what it learns from the training
targets (:meth:`Task.fit`, e.g. regression's standardisation, kept as a serialisable
:meth:`Task.state`), the targets as the loss takes them (:meth:`Task.encode`), the loss, its
metrics with their direction and display name (:class:`TaskMetric`), how a searched model's head
is sized from the targets (:meth:`Task.head_size`) and what the exported model outputs
(:meth:`Task.export_head`, appended to the model on export).

A user's own task is ``path/to/file.py:callable`` returning a :class:`Task` (:func:`load_task`).
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.registry import Registry, import_object, user_failure

DIRECTIONS = ("maximize", "minimize")


class TargetError(ConfigError):
    """Targets that do not fit the task: one line naming the array, what is wrong and what the
    task expects (``y: holds 3 NaN or infinite targets; the regression task needs ...``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.args = (f"{field}: {problem}",)


@dataclass(frozen=True)
class TaskMetric:
    """One metric of a task: its name (as objectives and budgets will say it), direction, the name
    tables and plots show, and the range its values lie in."""

    name: str
    direction: str
    display: str
    low: float = -math.inf
    high: float = math.inf
    description: str = ""

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` under this metric's direction."""
        return a > b if self.direction == "maximize" else a < b


#: the loss on held-out data, a metric of every task whose loss is computed from its outputs
LOSS = TaskMetric("loss", "minimize", "loss", 0.0, math.inf, "the task's loss on held-out data")


class Meter:
    """Accumulates a task's outputs and (encoded) targets over batches; :meth:`compute` scores
    them all at once with :meth:`Task.score`. Tasks whose metrics are sums override it so that
    nothing is held but the sums."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.outputs: list = []
        self.targets: list = []

    def update(self, output: Any, target: Any) -> None:
        self.outputs.append(_detach(output))
        self.targets.append(_detach(target))

    def compute(self) -> dict[str, float]:
        if not self.outputs:
            raise ValueError("no batches to score")
        cat = (lambda parts: torch.cat(parts)) if isinstance(self.outputs[0], torch.Tensor) else _flatten
        return self.task.score(cat(self.outputs), cat(self.targets))


def _detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detach(v) for v in value]
    return value


def _flatten(parts: list[list]) -> list:
    return [item for part in parts for item in part]


class Task(abc.ABC):
    """One task. Subclasses set the class attributes and implement the abstract methods; the
    constructor's keyword arguments are the task's state (:meth:`state`), JSON values only.

    Call order: :meth:`check_targets` on every split's raw targets, :meth:`fit` on the training
    split's, :meth:`encode` on each; :meth:`head_size` sizes a searched model's output; training
    minimises :meth:`loss`; a :meth:`meter` scores held-out batches; export appends
    :meth:`export_head`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: every metric the task reports (its scores' keys)
    metrics: ClassVar[tuple[TaskMetric, ...]] = ()
    #: the metric that stands for the task's quality (objectives' default)
    primary: ClassVar[str] = ""
    #: what the exported model outputs, in words
    exports: ClassVar[str] = ""
    #: conformance examples: one sample's input shape (detection's boxes lie in it)
    example_input_shape: ClassVar[tuple[int, ...]] = (4,)
    #: whether :meth:`distill` pulls a student towards a teacher (detection: no, its fine-tunes
    #: minimise the detector's own losses even with ``--distill``)
    distills: ClassVar[bool] = True
    #: whether :meth:`loss` reads the model's own losses (:meth:`train_output` in training mode,
    #: given the targets: a detector) rather than its eval outputs, so no loss is scored on
    #: held-out outputs and gradients of the loss need the model in training mode
    own_losses: ClassVar[bool] = False

    def state(self) -> dict[str, Any]:
        """What :meth:`fit` learnt and the options, as JSON values (``type(self)(**state)``
        rebuilds the task)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state()}

    def metric(self, name: str) -> TaskMetric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise ConfigError("metric", f"a metric of the {self.name} task ({', '.join(self.metric_names())})", name)

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    @abc.abstractmethod
    def check_targets(self, y: Any, *, n: int | None = None, input_shape: tuple[int, ...] | None = None,
                      field: str = "y") -> Any:
        """``y`` checked and in the task's canonical form (numpy arrays; detection: a list of
        dicts); :class:`TargetError` (one line naming ``field``) otherwise. ``n``: the number of
        samples it must hold; ``input_shape``: one sample's shape, where targets refer to it."""

    def fit(self, y_train: Any) -> Task:
        """Learn from the checked training targets what :meth:`encode` needs; returns ``self``."""
        return self

    def encode(self, y: Any) -> Any:
        """Checked targets as :meth:`loss` and :meth:`score` take them."""
        return torch.as_tensor(y)

    @abc.abstractmethod
    def head_size(self, y: Any) -> int:
        """How many outputs a searched model's head has (per sample, or per position), sized
        from the checked training targets."""

    def output_shape(self, head: int, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """One sample's output shape for a head of ``head`` (``None``: not one tensor)."""
        return (head,)

    def train_output(self, model: nn.Module, x: torch.Tensor, y: Any) -> Any:
        """The training-mode output :meth:`loss` reads for a batch ``x`` and its encoded targets
        ``y``: ``model(x)``; a detector takes the targets too (its losses)."""
        return model(x)

    @abc.abstractmethod
    def loss(self, output: Any, target: Any) -> torch.Tensor:
        """The scalar training loss of a batch's model output and encoded targets."""

    @abc.abstractmethod
    def score(self, output: Any, target: Any) -> dict[str, float]:
        """Every metric of :attr:`metrics` on a whole held-out set (outputs in eval mode)."""

    def meter(self) -> Meter:
        """An accumulator of held-out batches (``update(output, target)``, ``compute()``)."""
        return Meter(self)

    def distill(self, student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
        """The distillation term that pulls a compressed model's training-mode ``student``
        output towards the uncompressed ``teacher``'s (no gradient): by default the mean squared
        difference of the outputs (a regression's values; ``temperature`` unused). Tasks whose
        outputs are scores of classes soften both with ``temperature`` instead."""
        return torch.nn.functional.mse_loss(student, teacher)

    def export_head(self) -> nn.Module:
        """Appended to the model when it is exported (the training outputs to :attr:`exports`)."""
        return nn.Identity()

    # -- conformance examples (slimnas.testing.check_task) -------------------------------------

    @abc.abstractmethod
    def example_targets(self, n: int, seed: int) -> Any:
        """Raw targets of ``n`` samples that :meth:`check_targets` accepts."""

    @abc.abstractmethod
    def perfect_output(self, target: Any, head: int) -> Any:
        """An eval-mode output that predicts the encoded ``target`` exactly."""

    @abc.abstractmethod
    def random_output(self, target: Any, head: int, seed: int) -> Any:
        """An eval-mode output of an untrained model for ``target``'s samples."""

    def training_output(self, target: Any, head: int, seed: int) -> Any:
        """A training-mode output whose tensors require gradients (default: a random output)."""
        out = self.random_output(target, head, seed)
        return out.detach().requires_grad_() if isinstance(out, torch.Tensor) else out

    @abc.abstractmethod
    def bad_targets(self, n: int) -> dict[str, Any]:
        """What is wrong -> raw targets of ``n`` samples that :meth:`check_targets` must refuse."""


TASKS: Registry[type[Task]] = Registry("task")


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: register a :class:`Task` under ``name``.

    Example:
        >>> @register_task("ordinal")  # doctest: +SKIP
        ... class Ordinal(Task): ...
    """

    def decorator(cls: type[Task]) -> type[Task]:
        cls.name = name
        return TASKS.register(name)(cls)

    return decorator


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(name: str, **state: Any) -> Task:
    """A new instance of the task registered as ``name`` (with ``state``, e.g. a saved run's)."""
    cls = TASKS.get(name)
    try:
        return cls(**state)
    except TypeError as e:
        raise ConfigError(f"task.{name}", "the task's own options", f"{state} ({e})") from None


def task_from_dict(data: dict[str, Any]) -> Task:
    """The task :meth:`Task.to_dict` wrote (a saved run's)."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("state", {}), dict):
        raise ConfigError("task", "{'name': a registered task, 'state': {...}}", data)
    return get_task(data["name"], **data.get("state", {}))


NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def builtin_metric_names() -> dict[str, tuple[str, TaskMetric]]:
    """Metric name -> (the built-in task that reports it, its declaration); ``loss`` is every
    task's own and not listed."""
    out: dict[str, tuple[str, TaskMetric]] = {}
    for name in list_tasks():
        cls = TASKS.get(name)
        if cls.__module__.startswith("slimnas.tasks."):
            for m in cls.metrics:
                if m.name != LOSS.name:
                    out.setdefault(m.name, (name, m))
    return out


#: listers of the metric names slimnas measures beside a task's own (``macs``, ``latency_ms``):
#: the metric registry, a layer above, adds its own, so a layer below it can name them too
MEASURED_NAMES: list = []


def measured_metric_names() -> list[str]:
    """The metric names slimnas measures (its metric registry's, once that is imported)."""
    return [name for lister in MEASURED_NAMES for name in lister()]


def load_task(spec: str | Task, *, reserved: Iterable[str] = (), field: str = "task") -> Task:
    """The task ``spec`` names: a registered name (``regression``), a :class:`Task`, or a user's
    ``path/to/file.py:callable`` / ``package.module:callable`` returning one, checked by
    :func:`validate_task`. ``reserved``: the metric names slimnas measures beside the task's
    (``macs``, ``latency_ms``, ...), which a user task's metrics must not take."""
    if isinstance(spec, Task):
        return validate_task(spec, reserved=reserved, field=field)
    if not isinstance(spec, str) or not spec:
        raise ConfigError(field, f"one of {list_tasks()} or 'path/to/file.py:callable'", spec)
    if ":" not in spec:
        if spec not in TASKS:
            raise ConfigError(field, f"one of {list_tasks()} or 'path/to/file.py:callable'", spec)
        return get_task(spec)
    factory = import_object(spec, field)
    try:
        task = factory()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's callable failed
        raise ConfigError(field, "a callable that builds the task without arguments",
                          f"{spec} ({user_failure(e)})") from None
    if not isinstance(task, Task):
        raise ConfigError(field, "a callable returning a slimnas.tasks.Task", f"{spec} returned {type(task).__name__}")
    return validate_task(task, reserved=reserved, field=field)


def validate_task(task: Task, *, reserved: Iterable[str] = (), field: str = "task") -> Task:
    """``task`` if its declaration is complete and its metric names are its own; one
    :class:`ConfigError` line otherwise."""
    label = f"{field} {type(task).__name__}"
    if not isinstance(task.name, str) or not NAME.match(task.name):
        raise ConfigError(f"{label}.name", "a lower-case name (letters, digits, _)", task.name)
    metrics = task.metrics
    if not isinstance(metrics, (tuple, list)) or not metrics or not all(isinstance(m, TaskMetric) for m in metrics):
        raise ConfigError(f"{label}.metrics", "a non-empty tuple of slimnas.tasks.TaskMetric", metrics)
    names = [m.name for m in metrics]
    for m in metrics:
        if not isinstance(m.name, str) or not NAME.match(m.name):
            raise ConfigError(f"{label}.metrics", "metric names in lower case (letters, digits, _)", m.name)
        if m.direction not in DIRECTIONS:
            raise ConfigError(f"{label}.metrics.{m.name}.direction", "'maximize' or 'minimize'", m.direction)
        if not m.low < m.high:
            raise ConfigError(f"{label}.metrics.{m.name}", "a range with low < high", (m.low, m.high))
    if len(set(names)) != len(names):
        raise ConfigError(f"{label}.metrics", "each metric name once", names)
    if task.primary not in names:
        raise ConfigError(f"{label}.primary", f"one of its metrics ({', '.join(names)})", task.primary)
    if type(task).__module__.startswith("slimnas.tasks."):
        return task  # a built-in: its names are the built-in ones
    builtin = builtin_metric_names()
    for m in metrics:
        if m.name in builtin:  # a built-in's metric inherited as it is means the same
            if builtin[m.name][1] == m:
                continue
            taken = f"the {builtin[m.name][0]} task's"
        elif m.name in reserved and m.name != LOSS.name:
            taken = "measured by slimnas"
        else:
            continue
        raise ConfigError(f"{label}.metrics", f"metric names of its own ({m.name!r} is {taken}: rename it, "
                          f"e.g. 'my_{m.name}')", m.name)
    return task


def numeric_targets(y: Any, field: str, n: int | None, expected: str, *, integers: bool = False) -> np.ndarray:
    """``y`` as a numpy array of finite numbers, ``n`` rows long; :class:`TargetError` naming
    ``field`` and ``expected`` (what the task takes) otherwise. ``integers``: whole numbers only
    (returned as int64)."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    try:
        y = np.asarray(y)
    except (TypeError, ValueError):
        raise TargetError(field, f"holds values that are not an array of numbers; {expected}") from None
    if y.dtype.kind not in "iubf" or y.ndim == 0:
        raise TargetError(field, f"holds {'a scalar' if y.ndim == 0 else f'values of type {y.dtype}'}; {expected}")
    if n is not None and len(y) != n:
        raise TargetError(field, f"has {len(y)} targets for {n} samples; {expected}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise TargetError(field, f"holds {int((~np.isfinite(y)).sum())} NaN or infinite targets; {expected}")
    if integers:
        if y.dtype.kind == "f" and not (y == np.round(y)).all():
            example = y[y != np.round(y)].flat[0]
            raise TargetError(field, f"holds non-integer targets such as {example:g}; {expected}")
        return y.astype(np.int64)
    return y
