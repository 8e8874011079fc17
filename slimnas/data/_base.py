"""Dataset splits: the one value the data stage hands on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from slimnas.config import DataConfig
from slimnas.data._augment import Augment
from slimnas.data._preprocess import (
    Preprocessing,
    RunningStats,
    array_stats,
    assumed_layout,
    channel_first_batch,
    check_layout,
    check_no_channel,
    infer_kind,
    resolve_input_layout,
    to_input_layout,
)
from slimnas.data._stream import DiskArray, RowFile
from slimnas.data._tokenizers import build_tokenizer
from slimnas.tasks._base import Task
from slimnas.tasks._classification import Classification
from slimnas.tasks._classification import check_classes as _check_classes
from slimnas.tasks._classification import read_labels as _labels


@dataclass
class DataSplits:
    """Train / validation / test samples and labels, in the layout the model takes
    (channel-first by default: ``(N, C, L)`` or ``(N, C, H, W)``; text: ``(N, L)`` token ids).

    The search reads ``train`` and ``val`` only; ``test`` is read once, to report the final front.
    Samples are tensors, or :class:`DiskArray` s read from disk per batch for data streamed
    from a file (``data.stream``); both take ``len``, ``.shape`` and indexing.

    Attributes:
        kind: ``tabular``, ``sequence``, ``image`` or ``text`` (``""``: not said).
        preprocessing: what made the samples from the source (standardisation statistics from
            the training split, layouts, the fitted tokenizer); saved with every run.
        augment: applied to training batches only (``fit(..., augment=splits.augment)``).
        vocab_size, pad_id: text: the token ids' range and the padding id.
        notes: what was assumed reading the source (a 4-D array read as channels-last), one
            line each; the command line shows them as warnings.
        task: what the model is trained to do (:mod:`slimnas.tasks`), fitted on the training
            split; the targets are encoded by it (regression's standardised). ``n_classes`` is
            the head size it gives (classes; regression's target columns; multi-label's labels).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    kind: str = ""
    preprocessing: Preprocessing | None = None
    augment: Augment | None = None
    vocab_size: int | None = None
    pad_id: int = 0
    notes: tuple[str, ...] = ()
    task: Task = field(default_factory=Classification)
    #: the user's batches' form where the splits were read from their Datasets / DataLoaders
    #: (:class:`~slimnas.data._loaders.BatchForm`): a user training step or score function gets
    #: batches in it; ``None`` otherwise
    batch_form: Any = None

    @property
    def is_classification(self) -> bool:
        return type(self.task) is Classification

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    @property
    def streamed(self) -> bool:
        """Whether samples are read from disk per batch (not held as tensors)."""
        return not isinstance(self.x_train, torch.Tensor)

    def summary(self) -> str:
        text = f", vocabulary {self.vocab_size}" if self.vocab_size else ""
        head = f"{self.n_classes} classes" if self.is_classification else \
            f"task {self.task.name}, {self.n_classes} output{'s' if self.n_classes != 1 else ''}"
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val / "
            f"{len(self.y_test)} test, input {self.input_shape}, {head}{text}"
        )

    def info(self) -> dict[str, Any]:
        """What a saved model needs to know of its data besides shapes (``run.json``): the kind,
        the vocabulary size of text, the preprocessing; empty for data used as the source holds
        it (MNIST-1D, digits), so their run folders stay as they were."""
        out: dict[str, Any] = {}
        if self.vocab_size is not None:
            out.update(kind=self.kind, vocab_size=self.vocab_size, pad_id=self.pad_id)
        if self.preprocessing is not None and not self.preprocessing.is_identity:
            out.update(kind=self.kind, preprocessing=self.preprocessing.to_dict())
        if self.batch_form is not None and self.batch_form.packed:  # the user's loaders: how inputs were packed
            out["batch_form"] = self.batch_form.to_dict()
        if not self.is_classification:  # classification's run folders stay as they were
            from slimnas.tasks._run import task_record

            out["task"] = task_record(self.task)
        return out


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out) with ``fraction`` of every class held out, reproducibly."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_held = int(round(fraction * len(idx)))
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def channel_first(x: np.ndarray) -> np.ndarray:
    """Give feature vectors and sequences a channel axis: ``(N, F)`` becomes ``(N, 1, F)``."""
    if x.ndim == 2:
        return x[:, None, :]
    if x.ndim in (3, 4):
        return x
    raise ValueError(f"expected x with 2 to 4 dimensions (N, ...), got shape {x.shape}")


def _numeric(x, name: str) -> np.ndarray:
    """``x`` as finite float32 (ValueError naming the array otherwise)."""
    if np.iscomplexobj(x):  # float32 would silently drop the imaginary part
        raise ValueError(f"{name} holds complex numbers (expected real numbers; give the real and imaginary "
                         "parts as separate features)")
    try:
        out = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} holds values that are not numbers") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(out)).sum())} NaN or infinite values")
    return out


MIN_SAMPLES = 10  # fewer cannot give every split a sample to train, choose or test on


def _prepare(x, name: str, kind: str, layout: str | None) -> tuple[Any, str]:
    """A source array checked and put channel-first (numbers), as 1-D strings (text), or as
    row numbers of a file (:class:`_Rows`); and the 4-D layout it came in."""
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if kind != "text" and len(shape) >= 2 and 0 in shape[1:]:
        raise ValueError(f"{name} holds samples of no values, shape {shape} (expected at least one feature per "
                         "sample)")
    if isinstance(x, RowFile):
        layout = check_layout(x.shape, layout)
        return _Rows(x, np.arange(len(x)), layout), layout
    if kind == "text":
        x = np.asarray(x)
        if x.ndim != 1 or x.dtype.kind not in "USO":
            raise ValueError(f"{name} must hold one text per sample, shape (N,); got shape {x.shape}")
        return x.astype(str), ""
    layout = check_layout(np.shape(x), layout)
    x = _numeric(x, name)
    if layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    return channel_first(x), layout


class _Rows:
    """Row numbers into a :class:`RowFile`: a split of streamed data before it is read."""

    def __init__(self, source: RowFile, rows: np.ndarray, layout: str) -> None:
        self.source, self.rows, self.layout = source, rows, layout
        self.shape = (len(rows), *channel_first_batch(np.zeros((1, *source.shape[1:]), np.float32), layout).shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx) -> _Rows:
        return _Rows(self.source, self.rows[idx], self.layout)


def make_splits(
    name: str,
    x,
    y,
    x_test,
    y_test,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool | str,
    kind: str | None = None,
    options: DataConfig | None = None,
) -> DataSplits:
    """Carve validation (and, when the source has none, test) data from the training data, and
    prepare every split the same way, with statistics from the training split only.

    Args:
        x, x_test: numeric arrays, 1-D arrays of texts, or :class:`RowFile` s (streamed).
        standardize: ``True``/``"global"`` one mean and std for all inputs, ``"feature"`` per
            feature, ``"channel"`` per channel, ``False``/``"none"`` as they are.
        kind: ``tabular``, ``sequence``, ``image`` or ``text`` (default: from ``x``).
        options: the ``data:`` section's layouts, augmentation, tokenizer and workers.

    Raises:
        ValueError: naming what is wrong: too few samples or classes, labels that do not match
            the samples, NaN or infinite values, test data of another shape or with classes the
            training data lacks.
        ConfigError: a layout, augmentation or tokenizer option that does not fit the data.
    """
    options = options or DataConfig()
    mode = {True: "global", False: "none"}[standardize] if isinstance(standardize, bool) else standardize
    kind = kind or infer_kind(x)
    shape = tuple(x.shape) if hasattr(x, "shape") else np.shape(x)
    notes = tuple(n for n in [assumed_layout(shape)] if n and options.layout is None)
    x, layout = _prepare(x, "x", kind, options.layout)
    y = _labels(y, len(x), "y")
    _check_classes(y, "y")
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"{len(x)} samples; at least {MIN_SAMPLES} are needed")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test come together (or neither: a test split is then carved out)")
    if x_test is None or y_test is None:
        train_idx, test_idx = stratified_split(y, test_fraction, seed + 1)
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    else:
        x_test, _ = _prepare(x_test, "x_test", kind, options.layout)
    y_test = _labels(y_test, len(x_test), "y_test")
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(f"x_test samples are shaped {x_test.shape[1:]}, the training samples {x.shape[1:]}")
    if len(x_test) == 0:
        raise ValueError("no test samples")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"one class ({classes.tolist()[:1]}); a classifier needs at least two")
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    y = np.array([lookup[c] for c in y.tolist()], dtype=np.int64)
    unknown = set(np.unique(y_test).tolist()) - set(lookup)
    if unknown:
        raise ValueError(f"test labels {sorted(unknown)[:5]} do not occur in the training labels")
    y_test = np.array([lookup[c] for c in np.asarray(y_test).tolist()], dtype=np.int64)
    train_idx, val_idx = stratified_split(y, val_fraction, seed)
    x_train, y_train, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    if len(y_val) == 0 or len(y_train) == 0:
        raise ValueError(f"{len(y)} training samples leave {len(y_train)} to train on and {len(y_val)} to validate "
                         "on; more samples (or another val_fraction) are needed")
    t = torch.from_numpy
    labels = dict(y_train=t(y_train), y_val=t(y_val), y_test=t(y_test), n_classes=len(classes))
    if kind == "text":
        return _text_splits(name, x_train, x_val, x_test, labels, options)
    labels["notes"] = notes
    input_layout = resolve_input_layout(options.input_layout, kind)
    check_no_channel(tuple(x_train.shape[1:]), input_layout)
    augment = Augment.from_config(options.augment, kind, input_layout)
    if isinstance(x_train, _Rows):
        return _disk_splits(name, x_train, x_val, x_test, labels, kind, layout, mode, input_layout, augment,
                            options.num_workers)
    mean = std = None
    if mode == "global":  # statistics from the training part only
        mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
        mean, std = (np.full((1,) * (x_train.ndim - 1), v, np.float32) for v in (mean, std))
    elif mode in ("feature", "channel"):
        mean, std = array_stats(x_train, mode)
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
    x_train, x_val, x_test = (to_input_layout(a, input_layout) for a in (x_train, x_val, x_test))
    prep = Preprocessing(kind, layout, mode, mean, std, input_layout)
    return DataSplits(
        name=name,
        x_train=t(np.ascontiguousarray(x_train)),
        x_val=t(np.ascontiguousarray(x_val)),
        x_test=t(np.ascontiguousarray(x_test)),
        kind=kind,
        preprocessing=prep,
        augment=augment,
        **labels,
    )


def _text_splits(name: str, x_train, x_val, x_test, labels: dict, options: DataConfig) -> DataSplits:
    """Token ids of every split, by a tokenizer fitted on the training texts only."""
    tok = build_tokenizer(options.tokenizer).fit(list(x_train))
    if options.augment:
        Augment.from_config(options.augment, "text")  # refused in one line
    resolve_input_layout(options.input_layout, "text")
    t = torch.from_numpy
    prep = Preprocessing("text", input_layout="channels_first", tokenizer=tok.state())
    return DataSplits(name=name, x_train=t(tok.encode(list(x_train))), x_val=t(tok.encode(list(x_val))),
                      x_test=t(tok.encode(list(x_test))), kind="text", preprocessing=prep,
                      vocab_size=tok.vocab_size, pad_id=tok.pad_id, **labels)


def _disk_splits(name: str, x_train: _Rows, x_val: _Rows, x_test: _Rows, labels: dict, kind: str, layout: str,
                 mode: str, input_layout: str, augment: Augment | None, num_workers: int) -> DataSplits:
    """Splits read from disk per batch: one pass over the file checks every value and takes the
    training split's statistics; nothing is kept in memory but row numbers and labels."""
    stats = RunningStats(mode if mode != "none" else "global")
    for part, split in (("x", x_train), ("x", x_val), ("x_test", x_test)):
        for rows, raw in split.source.chunks(split.rows):
            chunk = channel_first_batch(raw.astype(np.float32, copy=False), layout)
            bad = ~np.isfinite(chunk)
            if bad.any():
                raise ValueError(f"{part} holds NaN or infinite values (row {int(rows[np.flatnonzero(bad.any(axis=tuple(range(1, bad.ndim))))[0]])})")
            if split is x_train and mode != "none":
                stats.add(chunk)
    mean, std = stats.result() if mode != "none" else (None, None)
    arrays = [DiskArray(s.source, s.rows, layout=layout, mean=mean, std=std, input_layout=input_layout,
                        num_workers=num_workers) for s in (x_train, x_val, x_test)]
    prep = Preprocessing(kind, layout, mode, mean, std, input_layout)
    return DataSplits(name=name, x_train=arrays[0], x_val=arrays[1], x_test=arrays[2], kind=kind,
                      preprocessing=prep, augment=augment, **labels)
