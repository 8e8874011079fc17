"""Language modelling: the next token at every position; cross-entropy over the vocabulary;
perplexity (``exp`` of the mean cross-entropy per token, in nats)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from slimnas.tasks._base import LOSS, Meter, TargetError, TaskMetric, register_task
from slimnas.tasks._tokens import PAD_LABEL, PerToken, check_token_ids


class LMMeter(Meter):
    """Sums over batches of the cross-entropy of every predicted token and of their count."""

    def __init__(self, task: LanguageModel) -> None:
        super().__init__(task)
        self.nll, self.n = 0.0, 0

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        pad = self.task.pad_label
        self.nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                          ignore_index=pad, reduction="sum"))
        self.n += int((y != pad).sum())

    def compute(self) -> dict[str, float]:
        loss = self.nll / max(self.n, 1)
        return {"perplexity": math.exp(min(loss, 700.0)), "loss": loss}


@register_task("lm")
class LanguageModel(PerToken):
    """Next-token prediction: the targets are the inputs shifted by one position.

    Args:
        vocab_size: how many token ids there are (the head's size; default: from the targets).
        pad_label: the target of positions without a next token (ignored).
    """

    description = "language modelling: next-token cross-entropy; perplexity"
    metrics = (TaskMetric("perplexity", "minimize", "perplexity", 1.0, math.inf,
                          "exp of the mean next-token cross-entropy"), LOSS)
    primary = "perplexity"
    exports = "next-token scores (logits) per position, shape (N, L, V)"
    example_input_shape = (8,)
    causal = True

    def __init__(self, vocab_size: int | None = None, pad_label: int = PAD_LABEL) -> None:
        if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size < 2):
            raise TargetError("task.lm.vocab_size", f"expected an integer >= 2, got {vocab_size!r}")
        self.vocab_size, self.pad_label = vocab_size, int(pad_label)

    def state(self) -> dict[str, Any]:
        return {"pad_label": self.pad_label, **({} if self.vocab_size is None else {"vocab_size": self.vocab_size})}

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> np.ndarray:
        y = check_token_ids(self, y, field, n, "the next token's id at every position", self.pad_label)
        if self.vocab_size is not None and y.max() >= self.vocab_size:
            raise TargetError(field, f"holds token id {int(y.max())}, beyond the vocabulary of {self.vocab_size}")
        if input_shape is not None and y.shape[1] != input_shape[-1]:
            raise TargetError(field, f"has {y.shape[1]} next tokens per sample for sequences of {input_shape[-1]}")
        return y

    def fit(self, y_train) -> LanguageModel:
        if self.vocab_size is None:
            self.vocab_size = self.head_size(y_train)
        return self

    def head_size(self, y) -> int:
        return self.vocab_size if self.vocab_size is not None else super().head_size(y)

    def meter(self) -> LMMeter:
        return LMMeter(self)

    def example_targets(self, n: int, seed: int) -> np.ndarray:
        y = np.random.default_rng(seed).integers(0, 5, (n, self.example_input_shape[0]))
        y[:, -1] = self.pad_label
        return y

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0)
        return {"float ids": good + 0.5, "NaN ids": np.where(good == 1, np.nan, good).astype(np.float64),
                "negative ids": np.where(good == 1, -3, good), "1-D targets": good[:, 0]}
