"""Tasks: what a model is trained to do, its loss, its metrics and their direction, how a searched
model's head is sized and what the exported model outputs (one registered class per task).

Built in: ``classification`` (slimnas's behaviour so far), ``regression``, ``multilabel``,
``tokens`` (sequence labelling), ``lm`` (language modelling) and ``detection``. A user's task is
``path/to/file.py:callable`` returning a :class:`Task` (:func:`load_task`); every registered task
passes :func:`slimnas.testing.check_task`.

``slimnas search`` trains and scores regression, multi-label, language models (a per-token
transformer head) and a user's task of one output vector per sample (``--task``, or the
dataset's own); ``slimnas compress`` and ``--auto`` compress them too (the docs' "Tasks" page
says what is wired in).

Example:
    >>> task = get_task("regression").fit([[1.0], [3.0]])
    >>> task.state()
    {'mean': [2.0], 'std': [1.0]}
    >>> [m.name for m in task.metrics]
    ['r2', 'mse', 'mae', 'loss']
"""

from slimnas.tasks import _classification, _detection, _lm, _multilabel, _regression, _tokens  # noqa: F401 - register
from slimnas.tasks._base import (
    TASKS,
    TargetError,
    Task,
    TaskMetric,
    get_task,
    list_tasks,
    load_task,
    register_task,
    task_from_dict,
)
from slimnas.tasks._regression import Regression

__all__ = [
    "TASKS",
    "Regression",
    "TargetError",
    "Task",
    "TaskMetric",
    "get_task",
    "list_tasks",
    "load_task",
    "register_task",
    "task_from_dict",
]
