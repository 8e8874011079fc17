"""Dataset registry: built-in datasets by name, user files and folders by path (read by their
format)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimnas.config import DataConfig, parse_config
from slimnas.data._base import DataSplits, make_splits
from slimnas.data._formats import BaseFormat, file_suffixes, folder_formats, format_for
from slimnas.data._preprocess import KINDS, infer_kind
from slimnas.errors import ConfigError
from slimnas.registry import Registry

#: name -> loader(**options) returning raw arrays ``(x, y, x_test, y_test)``.
DATASETS: Registry[Callable] = Registry("data.dataset")
#: files larger than this are read from disk per batch under ``data.stream: auto``
STREAM_AUTO_BYTES = 1 << 30
#: what ``data.normalize: auto`` means for files, by the kind of data
FILE_NORMALIZE = {"tabular": "feature", "sequence": "channel", "image": "channel", "text": "none"}


def register_dataset(name: str, *, kind: str | None = None, normalize: str = "none", task: str = "classification"):
    """Register a loader returning ``(x, y, x_test, y_test)`` numpy arrays (test may be ``None``;
    ``x`` may be a 1-D array of texts). Its keyword arguments are the dataset's options
    (``data.options``).

    Args:
        kind: ``tabular``, ``sequence``, ``image`` or ``text`` (default: from the arrays).
        normalize: what ``data.normalize: auto`` does to it: ``none`` (the loader scales its
            data), ``global``, ``feature`` or ``channel``.
        task: the task (``slimnas.tasks``) its targets are for; a loader of another task than
            ``classification`` returns its three splits, ``{'train' | 'val' | 'test': (x, y)}``,
            read by :func:`load_task_dataset`.

    Example:
        >>> @register_dataset("noise", kind="tabular", normalize="feature")  # doctest: +SKIP
        ... def noise(n: int = 100):
        ...     x = np.random.default_rng(0).normal(size=(n, 4))
        ...     return x, (x[:, 0] > 0).astype(int), None, None
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")

    def decorator(loader: Callable) -> Callable:
        loader.data_kind, loader.normalize, loader.task = kind, normalize, task
        return DATASETS.register(name)(loader)

    return decorator


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_help() -> str:
    """What ``--dataset`` takes, from the registries (plug-ins included)."""
    return (f"a dataset name ({', '.join(list_datasets())}), a {'/'.join(file_suffixes())} file, or a folder "
            "(of images per class, or of x.npy and y.npy)")


def load_dataset(
    name: str | DataConfig,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    label_column: str = "label",
    standardize: bool | None = None,
    task: Any = None,
    **options: Any,
) -> DataSplits:
    """Load a dataset by registered name, file or folder path, and split it.

    Args:
        name: a registered name (``mnist1d``, ``digits``, ``digits-images``, ``shapes32``,
            ``text``, ``wine``, ...), a path to a file of a registered format (``.npz``,
            ``.csv``) or a folder (images per class; ``x.npy`` and ``y.npy``); or a whole
            :class:`slimnas.config.DataConfig` (the ``data:`` section).
        val_fraction: share of the training data held out for validation (search decisions).
        test_fraction: share held out for test when the source has no test split.
        seed: seed of the splits (kept apart from the search seed so splits stay fixed).
        label_column: label column of a CSV file.
        standardize: legacy switch: ``True`` one mean and std for all inputs, ``False`` none;
            ``None`` lets ``normalize`` decide.
        **options: the other ``data:`` keys: ``normalize`` (``auto``: per feature for tabular
            files, per channel for images and sequences, as declared for built-ins), ``layout``,
            ``augment``, ``text_column``, ``tokenizer``, ``stream``, ``num_workers``,
            ``input_layout`` and ``options`` (the dataset's or format's own).
        task: what the model is trained to do (a :class:`slimnas.tasks.Task`, a task name or
            ``file.py:callable``); ``None``: the dataset's own task (classification, or the
            task a built-in dataset such as ``diabetes`` is for). A task dataset's targets are
            checked by the task, which is fitted on the training split (``splits.task``).

    Example:
        >>> splits = load_dataset("digits")
        >>> splits.input_shape
        (1, 8, 8)
    """
    if isinstance(name, DataConfig):
        if options:
            raise TypeError("pass options in the DataConfig, or a name with options, not both")
        config = name
    else:
        raw = {"dataset": name, "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed,
               "label_column": label_column, **options}
        config = parse_config({"data": raw}).data
    name = config.dataset
    path = Path(name)
    builtin = name in DATASETS and os.sep not in name
    fmt = None if builtin else format_for(path)
    if fmt is not None:
        if not path.exists():
            what = f"an existing {'/'.join(file_suffixes())} file" if fmt.suffixes else "an existing folder"
            raise ConfigError("data.dataset", what, name)
        file_task = _file_task(task, name)
        if file_task is not None:  # another task than classification: the file's targets are the task's
            from slimnas.data._tasks import file_task_splits

            if config.stream is True:
                raise ConfigError("data.stream", f"false or auto for a {file_task.name} file (its rows load into "
                                  "memory)", True)
            rows = _read(fmt, path, dataclasses.replace(config, stream=False))
            kind = infer_kind(rows[0])
            return file_task_splits(name, file_task, rows, kind=kind,
                                    normalize=FILE_NORMALIZE[kind] if fmt.standardize else "none", config=config)
        x, y, x_test, y_test = _read(fmt, path, config)
        kind = infer_kind(x)
        default = FILE_NORMALIZE[kind] if fmt.standardize else "none"
    else:
        if not builtin:
            folders = " or a folder of images per class or of x.npy and y.npy" if folder_formats() else ""
            raise ConfigError("data.dataset", f"one of {list_datasets()}, a {'/'.join(file_suffixes())} file{folders}",
                              name)
        if config.stream is True:
            raise ConfigError("data.stream", "a file or folder to read from disk (built-in datasets load into memory)",
                              True)
        loader = DATASETS.get(name)
        dataset_task = getattr(loader, "task", "classification")
        if dataset_task != "classification":
            from slimnas.data._tasks import check_wired, resolve_task, task_splits

            resolved = resolve_task(task, dataset_task, name)
            check_wired(resolved, getattr(loader, "data_kind", None) or "tabular", name)
            kwargs = _options(loader, config.options, f"the {name!r} dataset")
            if "seed" in inspect.signature(loader).parameters and "seed" not in config.options:
                kwargs["seed"] = config.seed  # its split seed: data.seed, as for every other dataset
            raw = loader(**kwargs)
            return task_splits(name, resolved, raw, kind=getattr(loader, "data_kind", None) or "tabular",
                               normalize=getattr(loader, "normalize", "none"), config=config)
        x, y, x_test, y_test = loader(**_options(loader, config.options, f"the {name!r} dataset"))
        kind = getattr(loader, "data_kind", None) or infer_kind(x)
        default = getattr(loader, "normalize", "none")
    if task is not None and fmt is None:  # a file's task was resolved above
        _classification_task(task, name)
    mode = config.normalize if config.normalize != "auto" else default
    if standardize is not None:
        mode = "global" if standardize else "none"
    if kind == "text":
        if config.normalize not in ("auto", "none"):
            raise ConfigError("data.normalize", "none or auto for text (token ids are not scaled)", config.normalize)
        mode = "none"
    try:
        return make_splits(name, x, y, x_test, y_test, val_fraction=config.val_fraction,
                           test_fraction=config.test_fraction, seed=config.seed, standardize=mode, kind=kind,
                           options=config)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError("data.dataset", "data to train, validate and test on", f"{name}: {e}") from None


def _file_task(task: Any, name: str) -> Any:
    """The task ``task`` names for the data of ``name`` when it is another task than
    classification (a data file's targets are then read and checked by it); ``None`` for
    classification, the data's own task when none is named."""
    from slimnas.tasks import Task, load_task
    from slimnas.tasks._base import measured_metric_names
    from slimnas.tasks._classification import Classification

    if task is None:
        return None
    resolved = load_task(task, reserved=measured_metric_names()) if isinstance(task, str) else task
    if not isinstance(resolved, Task):
        raise ConfigError("task", "a slimnas.tasks.Task or a task's name", type(task).__name__)
    return None if type(resolved) is Classification else copy.deepcopy(resolved)


def _classification_task(task: Any, name: str) -> None:
    """Refuse (one line) a task that is not classification for a classification dataset."""
    other = _file_task(task, name)
    if other is not None:
        raise ConfigError("task", f"classification for the dataset {name!r} (its labels are classes; other tasks take "
                          "a dataset of their own, such as diabetes or digits-multilabel)", other.name)


def load_task_dataset(name: str, **options: Any) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """``(task, {'train' | 'val' | 'test': (x, y)})`` of a built-in dataset of another task than
    classification (``diabetes``, ``digits-multilabel``, ``pysource``, ``boxes64``), as its loader
    makes them: raw samples and targets, checked by the task (``slimnas.tasks``) where they are used.

    Example:
        >>> task, splits = load_task_dataset("diabetes")
        >>> task, splits["train"][0].shape
        ('regression', (266, 10))
    """
    if name not in DATASETS or getattr(DATASETS.get(name), "task", "classification") == "classification":
        others = [n for n in list_datasets() if getattr(DATASETS.get(n), "task", "classification") != "classification"]
        raise ConfigError("data.dataset", f"a dataset of another task than classification ({', '.join(others)})", name)
    loader = DATASETS.get(name)
    return loader.task, loader(**_options(loader, options, f"the {name!r} dataset"))


def _options(target: Callable, options: dict, what: str, fixed: tuple[str, ...] = ()) -> dict:
    """``data.options`` checked against ``target``'s keyword arguments."""
    params = inspect.signature(target).parameters
    accepted = [p for p in params if p not in ("self", "path", *fixed) and params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in options:
        if key not in accepted:
            raise ConfigError(f"data.options.{key}", f"an option of {what} ({accepted or 'it takes none'})")
        value = options[key]
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise ConfigError(f"data.options.{key}", f"finite numbers (an option of {what})", value)
    return dict(options)


def _read(fmt: BaseFormat, path: Path, config: DataConfig):
    """Arrays from a file or folder: in memory, or left on disk when streaming."""
    stream = config.stream
    if stream == "auto":
        stream = fmt.streams and _size(path) > STREAM_AUTO_BYTES
    if stream and not fmt.streams:
        raise ConfigError("data.stream", "a .npz written by np.savez or a folder of .npy files to read from disk "
                          f"(a {fmt.name} source loads into memory)", True)
    reader = fmt.read_rows if stream else fmt.read
    kwargs = {"label_column": config.label_column}
    params = inspect.signature(reader).parameters
    if config.text_column is not None:
        if "text_column" not in params:
            raise ConfigError("data.text_column", "a .csv source (texts come from CSV files)", config.text_column)
        kwargs["text_column"] = config.text_column
    kwargs.update(_options(reader, config.options, f"the {fmt.name} format", fixed=("label_column", "text_column")))
    return reader(path, **kwargs)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.glob("x*.npy"))
    return path.stat().st_size
