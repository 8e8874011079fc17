"""A short, readable training loop with per-epoch callbacks.

Data held as tensors stay on the device, so an epoch is a loop over shuffled index slices, no
DataLoader workers to start; data streamed from disk (a :class:`slimnas.data.DiskArray`) is read
for the same index slices by DataLoader workers, so both give the same batches.
``TrainSpec.accumulate`` sums the gradients of several micro-batches before each optimizer step
(the step sees the gradient of their union); ``TrainSpec.amp`` trains in mixed precision on CUDA
(float16 autocast with loss scaling, Micikevicius et al. 2018) and changes nothing on the CPU.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from slimnas.data import Augment, DiskArray
from slimnas.errors import TrainingDiverged
from slimnas.spaces import TrainSpec
from slimnas.tasks._base import Task
from slimnas.tasks._classification import ClassificationMeter
from slimnas.tasks._classification import cross_entropy as classification_loss
from slimnas.training._user import active as active_user

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


_training = threading.local()


def training_now() -> bool:
    """Whether this thread is inside :func:`fit`'s batches or validation (not in a callback):
    where an interrupt can stop training without cutting a write to storage or disk short."""
    return getattr(_training, "active", False)


class StopTraining(Exception):
    """Raised by a callback to end training after this epoch, as planned (not a failure)."""


class Callback:
    """Hook into training. ``on_epoch_end`` gets the epoch (1-based) and that epoch's metrics
    (``train_loss`` and, with validation data, ``val_loss`` and ``val_accuracy``); it may raise
    :class:`StopTraining` to end training there, or another exception to abort it
    (``optuna.TrialPruned`` for early stopping)."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:  # pragma: no cover - no-op
        pass


class PlateauStop(Callback):
    """Ends training once validation accuracy (or the figure ``key``, better in ``direction``) has
    not improved for ``patience`` epochs, keeping the best epoch's weights (:meth:`restore` puts
    them back): fine-tune until it stops helping."""

    def __init__(self, model: nn.Module, patience: int = 3, *, key: str = "val_accuracy",
                 direction: str = "maximize") -> None:
        self.model, self.patience, self.key = model, patience, key
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.best, self.best_epoch, self.best_state = -math.inf, 0, None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        acc = metrics.get(self.key)
        if acc is None:
            return
        acc = self.sign * acc
        if acc > self.best:
            self.best, self.best_epoch = acc, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        elif epoch - self.best_epoch >= self.patience:
            raise StopTraining

    def restore(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)


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
    return classification_loss(logits, y)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024,
             task: Task | None = None) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``, in eval mode; with a
    ``task``, its metrics (``y``: its encoded targets); with a user score function in use
    (:mod:`slimnas.training._user`), its scores."""
    user = active_user()
    if user is not None and user.score_fn is not None:
        return user.score(model, x, y)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if isinstance(x, DiskArray):  # batches read from disk: bounded in bytes, not samples
        batch_size = min(batch_size, x.rows_per())
    meter = ClassificationMeter() if task is None else task.meter()
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        meter.update(model(xb), yb)
    model.train(was_training)
    return meter.compute()


#: the learning rate's share at the first step of a warm-up (``TrainSpec.warmup``)
WARMUP_START = 0.01


def make_scheduler(opt: torch.optim.Optimizer, spec: TrainSpec, total_steps: int):
    """The per-step learning-rate schedule of ``spec`` over ``total_steps`` optimizer steps, or
    ``None`` for a constant rate: a linear rise from ``WARMUP_START`` of the rate over the first
    ``spec.warmup`` share of the steps, then cosine annealing to zero over the rest (or the rate
    held, for ``schedule: constant``). Without a warm-up the cosine spans every step.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched, lrs = make_scheduler(opt, TrainSpec(warmup=0.5), 4), []
        >>> for _ in range(4):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 3))
        ...     opt.step()
        ...     sched.step()
        >>> lrs
        [0.01, 0.505, 1.0, 0.5]
    """
    warm = int(round(total_steps * spec.warmup))
    cosine = spec.schedule == "cosine"
    if warm == 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps) if cosine else None
    ramp = torch.optim.lr_scheduler.LinearLR(opt, start_factor=WARMUP_START, end_factor=1.0, total_iters=warm)
    if not cosine:
        return ramp
    after = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps - warm))
    return torch.optim.lr_scheduler.SequentialLR(opt, [ramp, after], milestones=[warm])


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
    augment: Augment | None = None,
    task: Task | None = None,
) -> History:
    """Train ``model`` in place with the recipe ``spec`` and return the per-epoch history.

    Raises:
        TrainingDiverged: the training loss became NaN or infinite.

    Args:
        epochs: overrides ``spec.epochs``.
        loss_fn: ``loss_fn(logits, y, x)``; distillation passes one that also runs a teacher.
        callbacks: called after every epoch, in order.
        augment: applied to every training batch (``DataSplits.augment``); never to validation.
        task: what the model learns (``DataSplits.task``, targets encoded by it): its loss
            trains it (unless ``loss_fn`` is given) and its metrics are the epochs' ``val_*``
            figures; ``None``: classification.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> h = fit(m, torch.randn(32, 4), torch.randint(0, 2, (32,)), TrainSpec(epochs=2))
        >>> len(h.epochs)
        2
    """
    n_epochs = spec.epochs if epochs is None else epochs
    if task is not None and loss_fn is cross_entropy:
        loss_fn = lambda output, y, x: task.loss(output, y)  # noqa: E731
    device = torch.device(device)
    model.to(device)
    if isinstance(x_train, torch.Tensor):
        x_train = x_train.to(device)
    y_train = y_train.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, spec)
    n = len(y_train)
    steps_per_epoch = max(1, math.ceil(n / (spec.batch_size * spec.accumulate)))
    sched = make_scheduler(opt, spec, n_epochs * steps_per_epoch)
    history = History()
    amp = spec.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    user = active_user()
    for epoch in range(1, n_epochs + 1):
        try:
            _training.active = True
            own = user if user is not None and user.train_step is not None else None  # the user's step per batch
            if own is not None or (spec.accumulate == 1 and scaler is None):
                metrics = _epoch(model, x_train, y_train, spec, opt, sched, gen, loss_fn, epoch, augment, own, task)
            else:
                metrics = _epoch_accumulated(model, x_train, y_train, spec, opt, sched, gen, loss_fn, epoch, scaler,
                                             augment, task)
            if x_val is not None and y_val is not None:
                val = evaluate(model, x_val, y_val, task=task)
                metrics.update({f"val_{k}": v for k, v in val.items()})
        finally:
            _training.active = False
        history.epochs.append(metrics)
        if not math.isfinite(metrics["train_loss"]):
            raise TrainingDiverged(epoch, metrics["train_loss"])
        try:
            for cb in callbacks:
                cb.on_epoch_end(epoch, metrics)
        except StopTraining:
            break
    return history


def _epoch(model, x_train, y_train, spec: TrainSpec, opt, sched, gen, loss_fn: LossFn, epoch: int,
           augment: Augment | None = None, user=None, task: Task | None = None) -> dict[str, float]:
    """One pass over the shuffled training data; the epoch's mean training loss. With ``user``
    (the user's training step, which steps the optimizer itself), each batch goes through it and
    the loss is the one it reports."""
    model.train()
    n = len(y_train)
    perm = torch.randperm(n, generator=gen).to(y_train.device)
    total = 0.0
    for idx, xb, yb in _batches(x_train, y_train, perm, spec.batch_size):
        if augment is not None:
            xb = augment(xb, gen)
        if user is not None:
            total += user.step(model, xb, yb, opt) * len(idx)
        else:
            loss = loss_fn(_forward(model, xb, yb, task), yb, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if sched is not None:
            sched.step()
    return {"epoch": epoch, "train_loss": total / n}


def _forward(model, xb, yb, task: Task | None):
    """The training-mode output the loss reads: ``model(xb)``, or the task's (a detector's losses)."""
    return model(xb) if task is None else task.train_output(model, xb, yb)


def _batches(x_train, y_train: torch.Tensor, perm: torch.Tensor, batch_size: int):
    """``(index, x, y)`` per batch of ``perm``: slices of tensors, or the same slices read from
    disk by a :class:`DiskArray`'s DataLoader workers."""
    n = len(y_train)
    slices = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    slices = [idx for idx in slices if not (len(idx) < 2 and n >= 2)]  # BatchNorm cannot train on a batch of one
    if not isinstance(x_train, DiskArray):
        for idx in slices:
            yield idx, x_train[idx], y_train[idx]
        return
    for idx, (xb, yb) in zip(slices, x_train.loader(slices, y_train), strict=True):
        yield idx, xb.to(y_train.device, non_blocking=True), yb.to(y_train.device)


def _epoch_accumulated(model, x_train, y_train, spec: TrainSpec, opt, sched, gen, loss_fn: LossFn, epoch: int,
                       scaler, augment: Augment | None = None, task: Task | None = None) -> dict[str, float]:
    """One pass with ``spec.accumulate`` micro-batches per optimizer step (each micro-batch's
    mean loss weighted by its share of the step's samples, so the step's gradient is that of
    their union's mean loss), in mixed precision when ``scaler`` is given (CUDA)."""
    model.train()
    n = len(y_train)
    perm = torch.randperm(n, generator=gen).to(y_train.device)
    group = spec.batch_size * spec.accumulate
    total = 0.0
    for start in range(0, n, group):
        chunk = perm[start : start + group]
        opt.zero_grad(set_to_none=True)
        stepped = False
        for idx, xb, yb in _batches(x_train, y_train, chunk, spec.batch_size):
            if augment is not None:
                xb = augment(xb, gen)
            with torch.autocast("cuda", dtype=torch.float16, enabled=scaler is not None):
                loss = loss_fn(_forward(model, xb, yb, task), yb, xb)
            weighted = loss * (len(idx) / len(chunk))
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
            total += float(loss.detach()) * len(idx)
            stepped = True
        if not stepped:
            continue
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        if sched is not None:
            sched.step()
    return {"epoch": epoch, "train_loss": total / n}
