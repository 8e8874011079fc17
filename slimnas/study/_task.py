"""A search's task, resolved with its plan: the ``task:`` key (``--task``) or the dataset's own,
the objectives it defaults to (its primary metric instead of accuracy), and the checks that a
run's objectives and budgets name its own metrics and that the search's parts are wired for it."""

from __future__ import annotations

from collections.abc import Sequence

from slimnas.config import RunConfig
from slimnas.data._tasks import check_wired, is_detection, per_token
from slimnas.errors import ConfigError
from slimnas.measure import list_metrics
from slimnas.measure._task_metrics import (
    check_task_objectives,
    is_classification,
    register_task_metrics,
)
from slimnas.strategies import BaseStrategy, get_strategy
from slimnas.tasks import TASKS, Task
from slimnas.tasks._run import load_run_task

#: the objectives of a config that names none
DEFAULT_OBJECTIVES = RunConfig().objectives


def dataset_task(dataset: str) -> str:
    """The task a built-in dataset is for (``classification`` for files and folders)."""
    from slimnas.data import DATASETS

    return getattr(DATASETS.get(dataset), "task", "classification") if dataset in DATASETS else "classification"


def plan_task(config: RunConfig) -> Task:
    """The run's task, not yet fitted: ``config.task`` (a name or ``file.py:callable``, its
    metrics then known as objectives), else the dataset's own."""
    if config.task is None:
        return TASKS.get(dataset_task(config.data.dataset))()
    task = load_run_task(config.task, reserved=list_metrics())
    register_task_metrics(task)
    return task


def task_objectives(task: Task, objectives: Sequence[str]) -> tuple[str, ...]:
    """A config's objectives for ``task``: the default ``accuracy, macs`` of a task that does not
    report accuracy becomes its primary metric and ``macs``."""
    if tuple(objectives) == DEFAULT_OBJECTIVES and "accuracy" not in task.metric_names():
        return tuple(task.primary if o == "accuracy" else o for o in objectives)
    return tuple(objectives)


#: the families with a per-token head (``per_token`` in their spec), for the per-token tasks
PER_TOKEN_FAMILIES = ("transformer",)


def check_task_plan(task: Task, config: RunConfig, names: dict[str, Sequence[str]], compression: bool,
                    families: Sequence[str] = ()) -> None:
    """Refuse (one line) objectives or budgets on another task's metric (``names``: field ->
    the metric names it holds), and, for another task than classification, the parts of a
    search not wired for it yet."""
    for field, metrics in names.items():
        check_task_objectives(task, metrics, field)
    if is_classification(task):
        return
    if is_detection(task):
        check_wired(task, "image", config.data.dataset, search=True)
    if compression:
        raise ConfigError("space.compression", f"no compression genes in a search of the {task.name} task "
                          "(compression is wired for classification only so far)")
    others = [f for f in families if f not in PER_TOKEN_FAMILIES]
    if per_token(task) and others:
        raise ConfigError("space.family", f"{', '.join(PER_TOKEN_FAMILIES)} for the {task.name} task (the families "
                          "with a per-token head)", others[0])
    strategy = get_strategy(config.strategy.name)
    if type(strategy).prepare is not BaseStrategy.prepare or type(strategy).warm_start is not BaseStrategy.warm_start:
        raise ConfigError("strategy.name", f"a strategy that trains each candidate for the {task.name} task (one-shot "
                          "strategies are wired for classification only so far)", config.strategy.name)
