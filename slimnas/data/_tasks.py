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
from slimnas.tasks._base import measured_metric_names

SPLITS = ("train", "val", "test")


def resolve_task(task: Task | str | None, dataset_task: str, dataset: str) -> Task:
    """The task a run of ``dataset`` (whose targets are for ``dataset_task``) trains: ``task``
    when it takes the dataset's targets, else the dataset's own. A built-in task that is not the
    dataset's is refused in one line (``--task regression`` on ``digits-multilabel``)."""
    if task is None:
        return TASKS.get(dataset_task)()
    if isinstance(task, str):
        task = load_task(task, reserved=measured_metric_names())
    own = TASKS.get(dataset_task)
    builtin = type(task).__module__.startswith("slimnas.tasks.")
    if builtin and type(task) is not own:
        raise ConfigError("task", f"the task of the dataset {dataset!r} ({dataset_task}), or a task of your own "
                          "that takes its targets", f"{task.name} (the {dataset} dataset is a {dataset_task} dataset)")
    return copy.deepcopy(task)


def check_wired(task: Task, kind: str, name: str) -> None:
    """Refuse (one line) a task search and compress are not wired for yet: per-token tasks
    (``tokens``, ``lm``) on other data than text; detection on other data than images."""
    if is_detection(task):
        if kind == "image":
            return
        raise ConfigError("task", "detection on images (a search of the centernet family, or slimnas compress "
                          "--model file.py:build with your own detector)", f"{task.name} on {name} ({kind or 'not image'} data)")
    if not (per_token(task) and kind == "text") and not (task.output_shape(1, (1,)) == (1,) and kind != "text"):
        raise ConfigError("task", "a task with one output vector per sample (regression, multilabel or your own "
                          "such task), one per token of text data (lm on pysource) or detection on "
                          "images", f"{task.name} on {name}")


def is_detection(task: Task) -> bool:
    """Whether ``task`` is detection (the built-in one or a task of your own built on it)."""
    from slimnas.tasks._detection import Detection

    return isinstance(task, Detection)


def per_token(task: Task) -> bool:
    """Whether ``task`` predicts at every position of a sequence (``tokens``, ``lm``)."""
    return task.output_shape(1, (5,)) == (5, 1)


def task_splits(name: str, task: Task, raw: dict, *, kind: str, normalize: str, config: DataConfig) -> DataSplits:
    """:class:`DataSplits` of a task dataset's three splits ``{'train' | 'val' | 'test': (x, y)}``:
    inputs channel-first and standardised as ``normalize`` says with the training split's
    statistics; targets checked, the task fitted on the training ones, all encoded."""
    check_wired(task, kind, name)
    if config.augment:
        raise ConfigError("data.augment", f"no augmentation for a {task.name} dataset (not wired in yet)",
                          config.augment)
    if kind == "text":  # token ids, as the source holds them: (N, 1, L), read by a token-id model
        return _token_splits(name, task, raw)
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


def file_task_splits(name: str, task: Task, rows: tuple, *, kind: str, normalize: str,
                     config: DataConfig) -> DataSplits:
    """:class:`DataSplits` of a data file's rows ``(x, y, x_test, y_test)`` (``.npz``, ``.csv``, a
    folder of ``x.npy``/``y.npy``) for ``task``: split at random, seeded by ``data.seed``
    (``data.test_fraction`` of the rows for test unless the file holds its own test split, then
    ``data.val_fraction`` of the rest for validation), then read as a built-in task dataset."""
    x, y, x_test, y_test = (None if a is None else np.asarray(a) for a in rows)
    rng = np.random.default_rng(config.seed)
    if x_test is None:
        order = rng.permutation(len(x))
        n_test = int(round(len(x) * config.test_fraction))
        x_test, y_test, x, y = x[order[:n_test]], y[order[:n_test]], x[order[n_test:]], y[order[n_test:]]
    order = rng.permutation(len(x))
    n_val = int(round(len(x) * config.val_fraction))
    raw = {"train": (x[order[n_val:]], y[order[n_val:]]), "val": (x[order[:n_val]], y[order[:n_val]]),
           "test": (x_test, y_test)}
    empty = [s for s in SPLITS if len(raw[s][0]) == 0]
    if empty:
        raise ConfigError("data.dataset", "rows for training, validation and test (data.val_fraction and "
                          "data.test_fraction of them)", f"{name}: {len(x) + len(x_test)} rows, none for {empty[0]}")
    return task_splits(name, task, raw, kind=kind, normalize=normalize, config=config)


def _token_splits(name: str, task: Task, raw: dict) -> DataSplits:
    """Splits of token ids (``(N, L)`` integers, as ``pysource`` holds them) for a per-token
    task: the ids as the model's inputs; the vocabulary is the task's, fitted on the training
    targets, where the inputs are the targets' tokens (a causal task: the next token; a language
    model's covers every id any split holds, or held-out text with a character of its own could
    not be scored), else the training inputs' (ids beyond it are clamped by the model's embedding)."""
    xs = {s: np.asarray(raw[s][0]) for s in SPLITS}
    for s, x in xs.items():
        if x.ndim != 2 or x.dtype.kind not in "iu" or (x < 0).any():
            raise ConfigError("data.dataset", "token ids, integers >= 0 shaped (N, L)", f"{name} x_{s} {x.shape}")
    ys = {s: task.check_targets(raw[s][1], n=len(xs[s]), input_shape=xs[s].shape[1:], field=f"{name} y_{s}")
          for s in SPLITS}
    if getattr(task, "vocab_size", 0) is None:  # lm: the ids' range, not the training text's
        task.vocab_size = 1 + max(int(v.max()) for v in (*xs.values(), *ys.values()))
    task.fit(ys["train"])
    head = task.head_size(ys["train"])
    vocab = head if getattr(task, "causal", False) else int(xs["train"].max()) + 1
    t = torch.from_numpy
    x = {s: t(np.ascontiguousarray(v[:, None, :].astype(np.float32))) for s, v in xs.items()}
    return DataSplits(name=name, x_train=x["train"], y_train=task.encode(ys["train"]), x_val=x["val"],
                      y_val=task.encode(ys["val"]), x_test=x["test"], y_test=task.encode(ys["test"]), n_classes=head,
                      kind="text", vocab_size=vocab, task=task)
