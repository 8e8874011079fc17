"""Data of another task than classification as :class:`DataSplits`: a built-in dataset of that
task (``diabetes``, ``digits-multilabel``) read by its loader's own splits, its targets checked
by the task, the task fitted on the training split only (regression's standardisation) and every
split's targets encoded as the task's loss takes them."""

from __future__ import annotations

import copy

import numpy as np
import torch

from slimnas.config import DataConfig
from slimnas.data._base import DataSplits, channel_first
from slimnas.data._preprocess import Preprocessing, array_stats, resolve_input_layout
from slimnas.errors import ConfigError
from slimnas.tasks import TASKS, Task, load_task

SPLITS = ("train", "val", "test")


def resolve_task(task: Task | str | None, dataset_task: str, dataset: str) -> Task:
    """The task a run of ``dataset`` (whose targets are for ``dataset_task``) trains: ``task``
    when it takes the dataset's targets, else the dataset's own. A built-in task that is not the
    dataset's is refused in one line (``--task regression`` on ``digits-multilabel``)."""
    if task is None:
        return TASKS.get(dataset_task)()
    if isinstance(task, str):
        from slimnas.measure import list_metrics

        task = load_task(task, reserved=list_metrics())
    own = TASKS.get(dataset_task)
    builtin = type(task).__module__.startswith("slimnas.tasks.")
    if builtin and type(task) is not own:
        raise ConfigError("task", f"the task of the dataset {dataset!r} ({dataset_task}), or a task of your own "
                          "that takes its targets", f"{task.name} (the {dataset} dataset is a {dataset_task} dataset)")
    return copy.deepcopy(task)


def check_wired(task: Task, kind: str, name: str) -> None:
    """Refuse (one line) a task search and compress are not wired for yet: per-token tasks
    (``tokens``, ``lm``) and detection."""
    if kind == "text" or task.output_shape(1, (1,)) != (1,):
        raise ConfigError("task", "a task with one output vector per sample (regression, multilabel or your own "
                          "such task; per-token and detection tasks are not wired into search yet)",
                          f"{task.name} on {name}")


def task_splits(name: str, task: Task, raw: dict, *, kind: str, normalize: str, config: DataConfig) -> DataSplits:
    """:class:`DataSplits` of a task dataset's three splits ``{'train' | 'val' | 'test': (x, y)}``:
    inputs channel-first and standardised as ``normalize`` says with the training split's
    statistics; targets checked, the task fitted on the training ones, all encoded."""
    check_wired(task, kind, name)
    if config.augment:
        raise ConfigError("data.augment", f"no augmentation for a {task.name} dataset (not wired in yet)",
                          config.augment)
    xs = {s: channel_first(np.asarray(raw[s][0], dtype=np.float32)) for s in SPLITS}
    ys = {}
    for s in SPLITS:
        ys[s] = task.check_targets(raw[s][1], n=len(xs[s]), input_shape=xs[s].shape[1:], field=f"{name} y_{s}")
    task.fit(ys["train"])
    mode = normalize if config.normalize == "auto" else config.normalize
    mean = std = None
    if mode == "global":
        mean = np.full((1,) * (xs["train"].ndim - 1), xs["train"].mean(), np.float32)
        std = np.full_like(mean, xs["train"].std() or 1.0)
    elif mode in ("feature", "channel"):
        mean, std = array_stats(xs["train"], mode)
    if mean is not None:
        xs = {s: (x - mean) / std for s, x in xs.items()}
    input_layout = resolve_input_layout(config.input_layout, kind)
    if input_layout != "channels_first":
        raise ConfigError("data.input_layout", f"channels_first for a {task.name} dataset", config.input_layout)
    t = torch.from_numpy
    return DataSplits(name=name, x_train=t(np.ascontiguousarray(xs["train"])), y_train=task.encode(ys["train"]),
                      x_val=t(np.ascontiguousarray(xs["val"])), y_val=task.encode(ys["val"]),
                      x_test=t(np.ascontiguousarray(xs["test"])), y_test=task.encode(ys["test"]),
                      n_classes=task.head_size(ys["train"]), kind=kind,
                      preprocessing=Preprocessing(kind, "", mode, mean, std, input_layout), task=task)
