"""A short, readable training loop with per-epoch callbacks.

Data stay as tensors on the device (the datasets here are small), so an epoch is a loop over
shuffled index slices; no DataLoader workers to start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from slimnas.spaces import TrainSpec

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Callback:
    """Hook into training. ``on_epoch_end`` gets the epoch (1-based) and that epoch's metrics
    (``train_loss`` and, with validation data, ``val_loss`` and ``val_accuracy``); it may raise
    to stop training (``optuna.TrialPruned`` for early stopping)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:  # pragma: no cover - no-op
        pass


@dataclass
class History:
    """Per-epoch metrics of one training run."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=0.9, nesterov=True, weight_decay=spec.weight_decay)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[spec.optimizer]
    return cls(params, lr=spec.lr, weight_decay=spec.weight_decay)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``, in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        logits = model(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(len(y), 1)
    return {"accuracy": correct / n, "loss": loss / n}


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    spec: TrainSpec,
    *,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    loss_fn: LossFn = cross_entropy,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` in place with the recipe ``spec`` and return the per-epoch history.

    Args:
        epochs: overrides ``spec.epochs``.
        loss_fn: ``loss_fn(logits, y, x)``; distillation passes one that also runs a teacher.
        callbacks: called after every epoch, in order.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> h = fit(m, torch.randn(32, 4), torch.randint(0, 2, (32,)), TrainSpec(epochs=2))
        >>> len(h.epochs)
        2
    """
    n_epochs = spec.epochs if epochs is None else epochs
    device = torch.device(device)
    model.to(device)
    x_train, y_train = x_train.to(device), y_train.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, spec)
    n = len(y_train)
    steps_per_epoch = max(1, math.ceil(n / spec.batch_size))
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs * steps_per_epoch)
        if spec.schedule == "cosine"
        else None
    )
    history = History()
    for epoch in range(1, n_epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for i in range(0, n, spec.batch_size):
            idx = perm[i : i + spec.batch_size]
            if len(idx) < 2 and n >= 2:  # BatchNorm cannot train on a batch of one
                continue
            xb, yb = x_train[idx], y_train[idx]
            loss = loss_fn(model(xb), yb, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
        metrics = {"epoch": epoch, "train_loss": total / n}
        if x_val is not None and y_val is not None:
            val = evaluate(model, x_val, y_val)
            metrics.update(val_accuracy=val["accuracy"], val_loss=val["loss"])
        if not math.isfinite(metrics["train_loss"]):
            history.epochs.append(metrics)
            break  # diverged: further epochs cannot help
        history.epochs.append(metrics)
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)
    return history
