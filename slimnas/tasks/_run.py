"""A run's task, kept with the run and read back: ``run.json`` holds :func:`task_record` (the
task's name, its fitted state, its primary metric and direction and, for a user's task, the
``file.py:callable`` that builds it), so loading, exporting and reporting a run rebuild the task
without its data; :func:`quality` names the figures that stand for a model's quality in a run
(``val_accuracy`` for classification, ``val_r2`` for regression, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimnas.errors import ConfigError
from slimnas.tasks._base import TASKS, Task, get_task, load_task

#: the attribute a task loaded from the user's file keeps its ``file.py:callable`` in
SPEC = "_slimnas_spec"


def user_spec(spec: str) -> str:
    """``file.py:callable`` with the file's path made absolute (a run read from another folder
    finds it); a module path is left as it is."""
    path, _, name = spec.rpartition(":")
    return f"{Path(path).resolve()}:{name}" if path.endswith(".py") else spec


def load_run_task(spec: str | Task, *, reserved=()) -> Task:
    """:func:`load_task`, remembering where a user's task came from (:func:`task_record`)."""
    task = load_task(spec, reserved=reserved)
    if isinstance(spec, str) and ":" in spec:
        setattr(task, SPEC, user_spec(spec))
    return task


def task_record(task: Task) -> dict[str, Any]:
    """What ``run.json`` keeps of a run's task."""
    primary = task.metric(task.primary)
    out = {"name": task.name, "state": task.state(), "primary": primary.name, "direction": primary.direction}
    spec = getattr(task, SPEC, None)
    if spec is not None:
        out["spec"] = spec
    return out


def task_from_record(record: dict[str, Any], field: str = "task") -> Task:
    """The fitted task :func:`task_record` wrote."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise ConfigError(field, "{'name': a task, 'state': {...}} (run.json's task)", record)
    state = record.get("state") or {}
    if "spec" in record:
        built = load_run_task(record["spec"])
        task = type(built)(**state) if state else built
        setattr(task, SPEC, record["spec"])
        return task
    if record["name"] not in TASKS:
        raise ConfigError(field, f"one of {TASKS.names()}", record["name"])
    return get_task(record["name"], **state)


def quality(record: dict[str, Any] | None) -> dict[str, str]:
    """The figures that stand for a model's quality in a run whose ``run.json`` task is
    ``record`` (``None``: classification): ``key`` (validation), ``test_key``, ``metric`` (the
    objective's name) and ``direction``."""
    name, direction = ("accuracy", "maximize") if not record else (record.get("primary", "accuracy"),
                                                                 record.get("direction", "maximize"))
    return {"metric": name, "key": f"val_{name}", "test_key": f"test_{name}", "direction": direction}
