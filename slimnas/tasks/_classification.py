"""Single-label classification, slimnas's first task: class ids, cross-entropy, top-1 accuracy.

The label checks (:func:`read_labels`, :func:`check_classes`) and the batch sums behind
accuracy and the mean cross-entropy (:class:`ClassificationMeter`) are the ones the data stage
(``data._base.make_splits``) and the training loop (``training.evaluate``, ``cross_entropy``)
use, so the task scores exactly as slimnas always has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slimnas.tasks._base import LOSS, Meter, TargetError, Task, TaskMetric, register_task

#: what a label looks like, said with every refused label
LABELS = ("the task is classification: labels must be class ids, integers 0..K-1 (or strings naming the classes), "
          "with several samples per class")
#: numbers as labels with more distinct values than this and fewer samples per class than
#: MIN_PER_CLASS on average read as a continuous target, not classes
MANY_CLASSES, MIN_PER_CLASS = 10, 3


def read_labels(y, n: int, name: str) -> np.ndarray:
    """``y`` as a 1-D array of ``n`` labels (``(N, 1)`` is read as ``(N,)``); ``ValueError``
    naming ``name`` otherwise (float labels that are not whole numbers, NaN, other shapes)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must hold one label per sample, shape (N,); got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels for {n} samples")
    if y.dtype.kind not in "iubfUS":
        raise ValueError(f"{name} holds labels of type {y.dtype}; {LABELS}")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(y)).sum())} NaN or infinite labels; {LABELS}")
    if y.dtype.kind == "f" and not (y == np.round(y)).all():
        example = y[np.flatnonzero(y != np.round(y))[0]]
        raise ValueError(f"{name} holds non-integer labels such as {example:g} (a regression target?); {LABELS}")
    return y


def check_classes(y: np.ndarray, name: str) -> None:
    """Refuse numeric labels that look like a continuous target: many distinct values, each on
    a few samples (scikit-learn's diabetes targets: 214 values on 442 samples)."""
    if y.dtype.kind not in "iuf":
        return
    n_classes = len(np.unique(y))
    if n_classes > MANY_CLASSES and len(y) < MIN_PER_CLASS * n_classes:
        raise ValueError(f"{name} holds {n_classes} distinct numbers for {len(y)} samples, fewer than "
                         f"{MIN_PER_CLASS} per class (a regression target?); {LABELS}")


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training loss: mean cross-entropy of class scores ``(N, K)`` and class ids ``(N,)``."""
    return F.cross_entropy(logits, y)


def softened_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft term: KL divergence of the temperature-softened class probabilities
    (over the last axis; every other axis is a sample), times ``T**2`` so its gradients keep their
    size as the temperature changes."""
    t = temperature
    s, q = student.reshape(-1, student.shape[-1]), teacher.reshape(-1, teacher.shape[-1])
    return t * t * F.kl_div(F.log_softmax(s / t, dim=1), F.log_softmax(q / t, dim=1), reduction="batchmean",
                            log_target=True)


class ClassificationMeter(Meter):
    """Sums of the cross-entropy and of correct top-1 predictions over batches."""

    def __init__(self, task: Task | None = None) -> None:
        super().__init__(task)
        self.loss, self.correct, self.n = 0.0, 0, 0

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += float(F.cross_entropy(logits, y, reduction="sum"))
        self.correct += int((logits.argmax(1) == y).sum())
        self.n += len(y)

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"accuracy": self.correct / n, "loss": self.loss / n}


@register_task("classification")
class Classification(Task):
    """One class per sample: class ids (or strings naming classes), cross-entropy, top-1 accuracy.

    Args:
        classes: the training labels' classes, sorted (learnt by :meth:`fit`); class ``i`` is
            the model's output ``i``.
    """

    description = "single-label classification: cross-entropy, top-1 accuracy"
    metrics = (TaskMetric("accuracy", "maximize", "accuracy", 0.0, 1.0, "top-1 accuracy"), LOSS)
    primary = "accuracy"
    exports = "class scores (logits), one per class"

    def __init__(self, classes: list | None = None) -> None:
        self.classes = None if classes is None else list(classes)

    def state(self) -> dict[str, Any]:
        return {} if self.classes is None else {"classes": self.classes}

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> np.ndarray:
        try:
            y = read_labels(y, len(np.asarray(y)) if n is None else n, field)
            check_classes(y, field)
        except ValueError as e:
            raise TargetError(field, str(e).removeprefix(f"{field} ")) from None
        return y

    def fit(self, y_train) -> Classification:
        classes = np.unique(y_train)
        if len(classes) < 2:
            raise TargetError("y", f"holds one class ({classes.tolist()[:1]}); a classifier needs at least two")
        self.classes = classes.tolist()
        return self

    def encode(self, y) -> torch.Tensor:
        y = np.asarray(y)
        if self.classes is None:
            return torch.as_tensor(y.astype(np.int64))
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(np.unique(y).tolist()) - set(lookup))
        if unknown:
            raise TargetError("y", f"holds labels {unknown[:5]} that do not occur in the training labels")
        return torch.tensor([lookup[c] for c in y.tolist()], dtype=torch.int64)

    def head_size(self, y) -> int:
        return len(np.unique(np.asarray(y))) if self.classes is None else len(self.classes)

    def distill(self, student, teacher, temperature: float) -> torch.Tensor:
        return softened_kl(student, teacher, temperature)

    def loss(self, output, target) -> torch.Tensor:
        return cross_entropy(output, target)

    def score(self, output, target) -> dict[str, float]:
        meter = self.meter()
        meter.update(output, target)
        return meter.compute()

    def meter(self) -> ClassificationMeter:
        return ClassificationMeter(self)

    def example_targets(self, n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).permutation(np.arange(n) % 3)

    def perfect_output(self, target, head: int) -> torch.Tensor:
        return 20.0 * F.one_hot(target, head).float()

    def random_output(self, target, head: int, seed: int) -> torch.Tensor:
        return torch.randn(len(target), head, generator=torch.Generator().manual_seed(seed))

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0).astype(np.float64)
        return {"float labels": good + 0.5, "NaN labels": np.where(np.arange(n) == 1, np.nan, good),
                "one label per sample": np.stack([good, good], 1), "a continuous target": np.linspace(0, 1, n)}
