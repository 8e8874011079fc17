"""Training a once-for-all supernet once, and re-estimating a sub-network's batch-norm statistics.

The sandwich rule (Yu & Huang 2019, "Universally Slimmable Networks"; BigNAS, Yu et al. 2020):
every step trains the largest sub-network on the labels, and the smallest and ``n_random``
random sub-networks on the largest one's predictions (in-place distillation), their gradients
summed into one update of the shared weights. As OFA (Cai et al. 2020) does, the largest network
first trains alone (``warmup_epochs``); then every layer's channels are sorted by importance,
so narrower sub-networks keep the most important ones. ``progressive`` shrinking (OFA) opens the
elastic dimensions one at a time instead: kernel, then depth, then width (channels sorted before
the width phase), each phase trained with the sandwich rule over the dimensions opened so far.

Every epoch's randomness (batch order, sub-networks) derives from the seed and the epoch alone,
and :func:`train_supernet` can save its state after every epoch, so a run stopped between
epochs resumes to the weights an uninterrupted one reaches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimnas.errors import TrainingDiverged
from slimnas.spaces import TrainSpec
from slimnas.tasks import Task
from slimnas.training._trainer import Callback, History, make_optimizer

SCHEDULES = ("sandwich", "progressive")
#: the elastic dimensions progressive shrinking opens, in order
PHASES = (("kernel",), ("kernel", "depth"), ("kernel", "depth", "width"))


@dataclass(frozen=True)
class SupernetTraining:
    """How a supernet is trained.

    Attributes:
        epochs: passes over the training data, warm-up included.
        warmup_epochs: epochs of the largest network alone before channels are sorted.
        n_random: random sub-networks per step besides the largest and the smallest.
        schedule: ``sandwich`` (every elastic dimension after the warm-up) or ``progressive``.
        distill: sub-networks learn from the largest one's predictions (in-place
            distillation); off, from the labels.
        temperature: of the distillation's softened predictions.
    """

    epochs: int = 60
    warmup_epochs: int = 10
    n_random: int = 2
    schedule: str = "sandwich"
    distill: bool = True
    temperature: float = 1.0


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> bool:
    """Re-estimate the batch-norm statistics of ``model`` as it is now configured (a plain
    sub-network, or a supernet at its active sub-network) from the samples ``x``: running
    statistics reset, then averaged over ``x`` in batches (a cumulative average, not an
    exponential one). Weights are not changed; the model's mode is restored. Returns whether
    the model has batch norm at all.

    Inherited statistics belong to no sub-network in particular (every sub-network trained
    updated them), so a sub-network is scored only after this (Cai et al. 2020; Yu et al. 2020).
    """
    bns = _batchnorms(model)
    if not bns:
        return False
    momenta = [m.momentum for m in bns]
    was = model.training
    device = next(model.parameters()).device
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for i in range(0, len(x), batch_size):
            batch = x[i : i + batch_size]
            if len(batch) >= 2:
                model(batch.to(device))
    finally:
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
        model.train(was)
    return True


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t


def _phase(epoch: int, cfg: SupernetTraining) -> tuple[str, tuple[str, ...]]:
    """``(name, elastic dimensions)`` of 1-based ``epoch``."""
    if epoch <= cfg.warmup_epochs:
        return "largest", ()
    if cfg.schedule == "sandwich":
        return "sandwich", PHASES[-1]
    left = max(1, cfg.epochs - cfg.warmup_epochs)
    k = min(len(PHASES) - 1, (epoch - cfg.warmup_epochs - 1) * len(PHASES) // left)
    return "progressive-" + "+".join(PHASES[k]), PHASES[k]


def epoch_rng(seed: int, epoch: int) -> tuple[torch.Generator, np.random.Generator]:
    """The batch order and sub-network draws of one epoch, from the seed and the epoch alone."""
    words = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2)
    return torch.Generator().manual_seed(int(words[0])), np.random.default_rng(int(words[1]))


def train_supernet(
    supernet: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    recipe: TrainSpec,
    config: SupernetTraining,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    callbacks: Sequence[Callback] = (),
    state_path: str | Path | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    sample: Callable[[np.random.Generator, tuple[str, ...]], object] | None = None,
    task: Task | None = None,
) -> History:
    """Train ``supernet`` (a :class:`slimnas.models.BaseSupernet`) in place.

    Args:
        recipe: optimizer, learning rate, weight decay, batch size and schedule (its
            ``epochs`` is ignored: ``config.epochs`` counts).
        callbacks: told after every epoch (``train_loss``, ``phase``, ``seconds``).
        state_path: where the training's state is saved after every epoch (weights, optimizer,
            schedule); training resumes from it when it exists.
        on_phase: told when a phase starts (its name and first epoch).
        sample: draws the random sub-networks of a step, ``sample(rng, dims)`` (default the
            supernet's uniform ``sample``; a search under a MAC budget draws inside it).
        task: what the supernet learns (``DataSplits.task``, ``y_train`` encoded by it): its
            loss trains the largest sub-network (and the others without ``distill``), its
            :meth:`~slimnas.tasks.Task.distill` pulls the others towards the largest one's
            outputs; ``None``: classification (cross-entropy, softened KL divergence).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    device = torch.device(device)
    supernet.to(device)
    x_train, y_train = x_train.to(device), y_train.to(device)
    opt = make_optimizer(supernet, recipe)
    n = len(y_train)
    steps_per_epoch = max(1, math.ceil(n / recipe.batch_size))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps_per_epoch)
             if recipe.schedule == "cosine" else None)
    history, start = History(), 1
    path = Path(state_path) if state_path is not None else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location=device, weights_only=True)
        supernet.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if sched is not None:
            sched.load_state_dict(saved["schedule"])
        history.epochs = list(saved["history"])
        start = len(history.epochs) + 1
    for epoch in range(start, config.epochs + 1):
        t0 = time.perf_counter()
        phase, dims = _phase(epoch, config)
        before, before_dims = _phase(epoch - 1, config)
        if "width" in dims and "width" not in before_dims:  # OFA sorts channels as width becomes elastic
            supernet.sort_channels()
            opt.state.clear()  # the optimizer's moments belong to the old channel order
        if on_phase is not None and (phase != before or epoch == start):
            on_phase(phase, epoch)
        gen, rng = epoch_rng(seed, epoch)
        loss = _epoch(supernet, x_train, y_train, recipe.batch_size, opt, sched, gen, rng, dims, config,
                      sample or supernet.sample, task)
        if not math.isfinite(loss):
            raise TrainingDiverged(epoch, loss)
        metrics = {"epoch": epoch, "train_loss": loss, "phase": phase, "seconds": round(time.perf_counter() - t0, 3)}
        history.epochs.append(metrics)
        if path is not None:
            state = {"model": supernet.state_dict(), "optimizer": opt.state_dict(), "history": history.epochs}
            if sched is not None:
                state["schedule"] = sched.state_dict()
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(path)
        for cb in callbacks:
            cb.on_epoch_end(epoch, metrics)
    supernet.set_active(supernet.largest())
    return history


def _epoch(supernet, x, y, batch_size: int, opt, sched, gen: torch.Generator, rng: np.random.Generator,
           dims: tuple[str, ...], cfg: SupernetTraining, sample, task: Task | None = None) -> float:
    supernet.train()
    n = len(y)
    perm = torch.randperm(n, generator=gen).to(x.device)
    total = 0.0
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        if len(idx) < 2 and n >= 2:
            continue
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        supernet.set_active(supernet.largest())
        logits = supernet(xb) if task is None else task.train_output(supernet, xb, yb)
        loss = F.cross_entropy(logits, yb) if task is None else task.loss(logits, yb)
        loss.backward()
        total += float(loss.detach()) * len(idx)
        if dims:
            distill = cfg.distill and (task is None or task.distills)  # a detector learns from its own losses
            teacher = logits.detach() if distill else None
            subnets = [supernet.smallest(dims), *(sample(rng, dims) for _ in range(cfg.n_random))]
            for spec in subnets:
                supernet.set_active(spec)
                out = supernet(xb) if task is None else task.train_output(supernet, xb, yb)
                if task is not None:
                    sub = task.distill(out, teacher, cfg.temperature) if distill else task.loss(out, yb)
                else:
                    sub = _kd_loss(out, teacher, cfg.temperature) if cfg.distill else F.cross_entropy(out, yb)
                sub.backward()
        opt.step()
        if sched is not None:
            sched.step()
    supernet.set_active(supernet.largest())
    return total / n
