"""Dataset splits: the one value the data stage hands on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class DataSplits:
    """Train / validation / test tensors, channel-first (``(N, C, L)`` or ``(N, C, H, W)``).

    The search reads ``train`` and ``val`` only; ``test`` is read once, to report the final front.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(self.x_train.shape[1:])

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_val)} val / "
            f"{len(self.y_test)} test, input {self.input_shape}, {self.n_classes} classes"
        )


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
    try:
        out = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} holds values that are not numbers") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(out)).sum())} NaN or infinite values")
    return out


MIN_SAMPLES = 10  # fewer cannot give every split a sample to train, choose or test on


def _labels(y, n: int, name: str) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` labels (``(N, 1)`` is read as ``(N,)``)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must hold one label per sample, shape (N,); got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels for {n} samples")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} holds NaN or infinite labels")
    if y.dtype.kind not in "iubfUS":
        raise ValueError(f"{name} holds labels of type {y.dtype} (expected numbers or strings)")
    return y


def make_splits(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    standardize: bool,
) -> DataSplits:
    """Carve validation (and, when the source has none, test) data from the training data.

    Raises:
        ValueError: naming what is wrong: too few samples or classes, labels that do not match
            the samples, NaN or infinite values, test data of another shape or with classes the
            training data lacks.
    """
    x = channel_first(_numeric(x, "x"))
    y = _labels(y, len(x), "y")
    if len(x) < MIN_SAMPLES:
        raise ValueError(f"{len(x)} samples; at least {MIN_SAMPLES} are needed")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test come together (or neither: a test split is then carved out)")
    if x_test is None or y_test is None:
        train_idx, test_idx = stratified_split(y, test_fraction, seed + 1)
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    x_test = channel_first(_numeric(x_test, "x_test"))
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
    if standardize:  # statistics from the training part only
        mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
        x_train, x_val, x_test = ((a - mean) / std for a in (x_train, x_val, x_test))
    t = torch.from_numpy
    return DataSplits(
        name=name,
        x_train=t(np.ascontiguousarray(x_train)),
        y_train=t(y_train),
        x_val=t(np.ascontiguousarray(x_val)),
        y_val=t(y_val),
        x_test=t(np.ascontiguousarray(x_test)),
        y_test=t(y_test),
        n_classes=len(classes),
    )
