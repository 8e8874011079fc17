"""Sequence labelling (token classification): one class id per position, ``pad_label`` where
there is none; cross-entropy over the labelled positions; token accuracy and macro F1."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slimnas.tasks._base import (
    LOSS,
    Meter,
    TargetError,
    Task,
    TaskMetric,
    numeric_targets,
    register_task,
)

#: the label of positions that carry none (padding), PyTorch's ``ignore_index`` default
PAD_LABEL = -100


def check_token_ids(task: Task, y, field: str, n: int | None, what: str, pad: int) -> np.ndarray:
    """``y`` as ``(N, L)`` int64 ids, each >= 0 or ``pad``: the checks of every per-position task."""
    expected = f"the {task.name} task takes {what}, shape (N, L), integers >= 0 ({pad} where a position has none)"
    y = numeric_targets(y, field, n, expected, integers=True)
    if y.ndim != 2:
        raise TargetError(field, f"has shape {y.shape}; {expected}")
    bad = (y < 0) & (y != pad)
    if bad.any():
        raise TargetError(field, f"holds negative ids such as {int(y[bad].flat[0])}; {expected}")
    if not (y != pad).any():
        raise TargetError(field, f"holds no labelled position (all {pad}); {expected}")
    return y


class TokenMeter(Meter):
    """Sums over batches of the loss and, per class, true and false positives and negatives."""

    def __init__(self, task: TokenClassification) -> None:
        super().__init__(task)
        self.loss, self.n = 0.0, 0
        self.tp = self.fp = self.fn = None

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        pad, k = self.task.pad_label, logits.shape[-1]
        keep = y != pad
        self.loss += float(F.cross_entropy(logits.reshape(-1, k).float(), y.reshape(-1), ignore_index=pad,
                                           reduction="sum"))
        pred, true = logits.argmax(-1)[keep], y[keep]
        self.n += len(true)
        counts = [torch.bincount(v, minlength=k)[:k] for v in (pred[pred == true], pred[pred != true], true[pred != true])]
        if self.tp is None:
            self.tp, self.fp, self.fn = (torch.zeros(k, dtype=torch.int64) for _ in range(3))
        self.tp += counts[0].cpu()
        self.fp += counts[1].cpu()
        self.fn += counts[2].cpu()

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1)
        seen = (self.tp + self.fp + self.fn) > 0  # classes in the targets or the predictions
        f1 = (2 * self.tp / (2 * self.tp + self.fp + self.fn).clamp(min=1))[seen]
        return {"token_accuracy": int(self.tp.sum()) / n, "token_f1": float(f1.mean()) if len(f1) else 0.0,
                "loss": self.loss / n}


class PerToken(Task):
    """A task with one label per token (``pad_label`` where there is none): a head of one logit
    per label at every position, cross-entropy over the labelled positions, scored by its meter."""

    pad_label: int = PAD_LABEL
    #: whether a position's prediction may read only that position and the earlier ones (a
    #: language model's next token), which a searched model's per-token head then does
    causal: bool = False

    def head_size(self, y) -> int:
        y = np.asarray(y)
        return int(y[y != self.pad_label].max()) + 1

    def output_shape(self, head: int, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (input_shape[-1], head)

    def loss(self, output, target) -> torch.Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1), ignore_index=self.pad_label)

    def distill(self, student, teacher, temperature: float) -> torch.Tensor:
        """Hinton's soft term over each position's scores."""
        from slimnas.tasks._classification import softened_kl

        return softened_kl(student, teacher, temperature)

    def score(self, output, target) -> dict[str, float]:
        meter = self.meter()
        meter.update(output, target)
        return meter.compute()

    def perfect_output(self, target, head: int) -> torch.Tensor:
        return 20.0 * F.one_hot(target.clamp(min=0), head).float()

    def random_output(self, target, head: int, seed: int) -> torch.Tensor:
        return torch.randn(*target.shape, head, generator=torch.Generator().manual_seed(seed))


@register_task("tokens")
class TokenClassification(PerToken):
    """A class per position of a sequence (tags of tokens).

    Args:
        pad_label: the target of positions without a label (ignored by loss and metrics).
    """

    description = "sequence labelling: per-token cross-entropy; token accuracy, macro F1 (pad label ignored)"
    metrics = (TaskMetric("token_f1", "maximize", "token F1", 0.0, 1.0, "macro F1 over the tags, per token"),
               TaskMetric("token_accuracy", "maximize", "token accuracy", 0.0, 1.0, "share of tokens tagged right"),
               LOSS)
    primary = "token_f1"
    exports = "tag scores (logits) per position, shape (N, L, K)"
    example_input_shape = (6,)

    def __init__(self, pad_label: int = PAD_LABEL) -> None:
        self.pad_label = int(pad_label)

    def state(self) -> dict[str, Any]:
        return {"pad_label": self.pad_label}

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> np.ndarray:
        y = check_token_ids(self, y, field, n, "a tag id per position", self.pad_label)
        if input_shape is not None and y.shape[1] != input_shape[-1]:
            raise TargetError(field, f"has {y.shape[1]} tags per sample for sequences of {input_shape[-1]} tokens")
        return y

    def meter(self) -> TokenMeter:
        return TokenMeter(self)

    def example_targets(self, n: int, seed: int) -> np.ndarray:
        y = np.random.default_rng(seed).integers(0, 3, (n, self.example_input_shape[0]))
        y[:, -1] = self.pad_label  # every sequence padded at its end
        return y

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0)
        return {"float tags": good + 0.5, "NaN tags": np.where(good == 1, np.nan, good).astype(np.float64),
                "negative tags other than the pad label": np.where(good == 1, -1, good),
                "one tag per sample (1-D)": good[:, 0], "all padding": np.full_like(good, self.pad_label)}
