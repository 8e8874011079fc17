"""Multi-label classification: any number of K labels per sample (a 0/1 matrix); BCE with logits;
mean average precision (scikit-learn's, over the labels that occur) and F1 at a threshold; the
exported model outputs each label's probability."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimnas.tasks._base import LOSS, TargetError, Task, TaskMetric, numeric_targets, register_task

EXPECTED = "the multi-label task takes a 0/1 matrix, shape (N, K): 1 where a sample has the label"


@register_task("multilabel")
class MultiLabel(Task):
    """Several labels per sample.

    Args:
        threshold: the probability from which a label counts as predicted (F1).
    """

    description = "multi-label classification: BCE with logits; mean average precision, F1 at a threshold"
    metrics = (TaskMetric("mean_ap", "maximize", "mAP", 0.0, 1.0, "mean over labels of the average precision"),
               TaskMetric("f1", "maximize", "F1", 0.0, 1.0, "micro-averaged F1 of the labels at the threshold"),
               LOSS)
    primary = "mean_ap"
    exports = "each label's probability (sigmoid of its logit)"

    def __init__(self, threshold: float = 0.5) -> None:
        if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise TargetError("task.multilabel.threshold", f"expected a probability in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)

    def state(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> np.ndarray:
        y = numeric_targets(y, field, n, EXPECTED)
        if y.ndim != 2 or y.shape[1] < 1:
            raise TargetError(field, f"has shape {y.shape}; {EXPECTED}")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise TargetError(field, f"holds values other than 0 and 1 such as {y[bad].flat[0]:g}; {EXPECTED}")
        return y.astype(np.float32)

    def encode(self, y) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y, dtype=np.float32))

    def head_size(self, y) -> int:
        return int(np.asarray(y).shape[1])

    def loss(self, output, target) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(output, target.float())

    def score(self, output, target) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, f1_score

        prob, true = torch.sigmoid(output.float()).numpy(), target.numpy().astype(int)
        present = true.sum(0) > 0  # a label no sample has has no precision to average
        mean_ap = float(average_precision_score(true[:, present], prob[:, present], average="macro")) if present.any() else 0.0
        f1 = float(f1_score(true, (prob >= self.threshold).astype(int), average="micro", zero_division=0))
        return {"mean_ap": mean_ap, "f1": f1, "loss": float(F.binary_cross_entropy_with_logits(output, target.float()))}

    def distill(self, student, teacher, temperature: float) -> torch.Tensor:
        """Binary cross-entropy to the teacher's (temperature-softened) label probabilities, times ``T**2``."""
        t = temperature
        return t * t * F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher / t))

    def export_head(self) -> nn.Module:
        return nn.Sigmoid()

    def example_targets(self, n: int, seed: int) -> np.ndarray:
        y = np.random.default_rng(seed).random((n, 4)) < 0.4
        y[0], y[1] = True, False  # every label occurs and is missing somewhere
        return y.astype(np.int64)

    def perfect_output(self, target, head: int) -> torch.Tensor:
        return 20.0 * (2 * target.float() - 1)

    def random_output(self, target, head: int, seed: int) -> torch.Tensor:
        return torch.randn(len(target), head, generator=torch.Generator().manual_seed(seed))

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0).astype(np.float64)
        return {"NaN targets": np.where(np.arange(n)[:, None] == 1, np.nan, good), "values other than 0/1": good * 2,
                "one label per sample (1-D)": good[:, 0], "strings": np.array([["a"]] * n)}
