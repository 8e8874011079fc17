"""A search's task, resolved with its plan: the ``task:`` key (``--task``) or the dataset's own,
the objectives it defaults to (its primary metric instead of accuracy), and the checks that a
run's objectives and budgets name its own metrics and that the search's parts are wired for it."""

from __future__ import annotations

from collections.abc import Sequence

from slimnas.compress._distill import no_distillation_note
from slimnas.config import RunConfig
from slimnas.data._tasks import is_detection, per_token
from slimnas.errors import ConfigError
from slimnas.measure import list_metrics
from slimnas.measure._task_metrics import (
    check_task_objectives,
    is_classification,
    register_task_metrics,
)
from slimnas.spaces import FAMILIES, list_families
from slimnas.spaces._family import has_per_token
from slimnas.spaces._space import DEFAULT_FAMILIES
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


def task_space(task: Task, space: dict) -> dict:
    """A config's ``space`` section for ``task``: a space that names no family searches the
    families made for the task where there are such (detection: ``centernet``), a per-token
    task's the default families that have a per-token head, any other task's the defaults."""
    if "family" in space:
        return space
    made = made_for(task)
    if made:
        return {**space, "family": made}
    if per_token(task):
        return {**space, "family": [f for f in DEFAULT_FAMILIES if has_per_token(FAMILIES.get(f))]}
    return space


def made_for(task: Task) -> list[str]:
    """The families made for ``task`` alone (:attr:`~slimnas.spaces.BaseFamily.tasks`): the
    ``centernet`` family for detection (a task of one's own built on it included); none for
    the tasks any family takes."""
    from slimnas.data._tasks import is_detection

    names = {task.name, *(["detection"] if is_detection(task) else [])}
    return [f for f in list_families() if names & set(FAMILIES.get(f).tasks)]


def one_shot(strategy: str) -> bool:
    """Whether the strategy named ``strategy`` trains shared weights (a supernet, DARTS) rather
    than each candidate."""
    cls = type(get_strategy(strategy))
    return cls.prepare is not BaseStrategy.prepare or cls.warm_start is not BaseStrategy.warm_start


def check_task_plan(task: Task, config: RunConfig, names: dict[str, Sequence[str]],
                    families: Sequence[str] = ()) -> None:
    """Refuse (one line) objectives or budgets on another task's metric (``names``: field ->
    the metric names it holds), and, for another task than classification, the parts of a
    search not wired for it yet (DARTS on detection; on a per-token task, a family without a
    per-token head and the supernet of other families than the cnn); a family made for other
    tasks."""
    check_task_plan_family(task, families)
    for field, metrics in names.items():
        check_task_objectives(task, metrics, field)
    if is_classification(task):
        return
    if is_detection(task) and one_shot(config.strategy.name) and config.strategy.name != "supernet":
        raise ConfigError("strategy.name", f"supernet or a strategy that trains each candidate for the {task.name} "
                          f"task ({config.strategy.name} relaxes a classifier's CNN: no heatmap, box-sides heads nor "
                          "top-K detections)", config.strategy.name)
    able = [f for f in list_families() if has_per_token(FAMILIES.get(f))]
    others = [f for f in families if f not in able]
    if per_token(task) and others:
        why = FAMILIES.get(others[0]).no_per_token
        raise ConfigError("space.family", f"{', '.join(able)} for the {task.name} task (the families with a "
                          f"per-token head{f'; {others[0]} has none: {why}' if why else ''})", others[0])
    if per_token(task) and one_shot(config.strategy.name):
        check_token_one_shot(config.strategy.name, families, f"the {task.name} task")


def check_task_plan_family(task: Task, families: Sequence[str]) -> None:
    """Refuse (one line) a family made for other tasks (``centernet`` on classification), and on
    a task families are made for (detection), any other family."""
    made = made_for(task)
    if made:
        wrong = [f for f in families if f not in made]
        if wrong:
            raise ConfigError("space.family", f"{', '.join(made)} for the {task.name} task (the families that "
                              "answer with its outputs)", wrong[0])
        return
    wrong = [f for f in families if FAMILIES.get(f).tasks]
    if wrong:
        raise ConfigError("space.family", f"a family for the {task.name} task ({wrong[0]} is made for the "
                          f"{', '.join(FAMILIES.get(wrong[0]).tasks)} task)", wrong[0])


def check_token_one_shot(strategy: str, families: Sequence[str], what: str) -> None:
    """Refuse (one line) a one-shot strategy that cannot search ``what`` (token ids, a per-token
    task): DARTS relaxes the CNN family's choices with its embedding and per-token head (the
    space's other families are its evolution's, trained each); the supernet takes them with the
    families of :data:`~slimnas.strategies._supernet.TOKEN_FAMILIES` only; no other."""
    from slimnas.strategies._supernet import TOKEN_FAMILIES

    if strategy == "darts":
        return
    if strategy != "supernet":
        raise ConfigError("strategy.name", f"supernet, darts or a strategy that trains each candidate for {what} "
                          f"({strategy} has no supernet of token ids or per-token heads)", strategy)
    others = [f for f in families if f not in TOKEN_FAMILIES]
    if others:
        raise ConfigError("space.family", f"{', '.join(TOKEN_FAMILIES)} for the supernet strategy on {what} (the "
                          "families whose supernet embeds token ids and predicts per token)", others[0])


def compression_notes(plan, task: Task) -> list[str]:
    """What a search with compression genes says once about its task: distillation asked of a
    task without a distillation term (its fine-tunes minimise the task's own loss, as
    ``compress --distill`` does)."""
    comp = plan.space.compression
    note = no_distillation_note(task)
    return [note] if comp is not None and note and True in comp.params["distill"].choices() else []
