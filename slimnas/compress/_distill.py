"""Retraining after a compression step, optionally with knowledge distillation.

Distillation follows Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network"): the
student matches the teacher's temperature-softened class probabilities, mixed with the usual
cross-entropy on the labels; the soft term is scaled by ``T**2`` so its gradients keep their size
as the temperature changes. Another task distils on its own outputs (:meth:`slimnas.tasks.Task.distill`):
a regression's mean squared difference to the teacher's values, a multi-label model's binary
cross-entropy to the teacher's label probabilities, a language model's softened KL per position;
its own loss replaces the label cross-entropy. A model may take several (keyword) inputs and answer with a dict or
a ``ModelOutput``: both models' outputs are flattened and the loss reads one of them, the
``logits`` (or the first floating-point output) unless ``output_key`` names another.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from slimnas.compress._base import BaseCompressor
from slimnas.compress._quality import Quality
from slimnas.data import DataSplits
from slimnas.errors import ConfigError
from slimnas.measure._task_metrics import is_classification
from slimnas.models._io import ExampleInputs, main_output
from slimnas.spaces import TrainSpec
from slimnas.tasks import Task
from slimnas.training import Callback, History, fit
from slimnas.training._trainer import PlateauStop, cross_entropy

#: the fine-tuning recipe used when none is given: a gentle learning rate, cosine decay
FINETUNE_SPEC = TrainSpec(optimizer="adam", lr=3e-3, batch_size=128, epochs=1, schedule="cosine")


def no_distillation_note(task: Task | None) -> str | None:
    """What is said once when distillation is asked of a task without a distillation term
    (:attr:`~slimnas.tasks.Task.distills` false: a detector's losses need its targets); ``None``
    for the others."""
    if task is None or getattr(task, "distills", True):
        return None
    return f"the {task.name} task has no distillation term: the fine-tunes minimise the model's own losses"


class DistillationLoss:
    """``loss_fn(logits, y, x)`` for :func:`slimnas.training.fit` that also runs a teacher.

    Args:
        teacher: the uncompressed model; kept frozen, in eval mode.
        temperature: softening temperature ``T`` (> 0).
        alpha: weight of the soft (teacher) term; ``1 - alpha`` goes to the label cross-entropy.
        task: what the models are trained for (``DataSplits.task``); ``None`` or classification:
            Hinton's KL over classes and the label cross-entropy, as always.
        output_key: which flattened output (:func:`~slimnas.models._io.flatten_outputs`) both
            terms read when the models answer with a dict, tuple or ``ModelOutput``; by default
            ``logits``, else the first floating-point output.

    ``logits`` may be the student's whole output (a dict, a ``ModelOutput``) and ``x`` the
    batch's inputs as a tensor, a tuple, a dict of keyword tensors or
    :class:`~slimnas.models._io.ExampleInputs`: the teacher is called with them as the student was.

    Example:
        >>> teacher = torch.nn.Linear(4, 3)
        >>> loss = DistillationLoss(teacher, temperature=4.0, alpha=0.9)
        >>> x = torch.randn(8, 4)
        >>> float(loss(teacher(x), torch.zeros(8, dtype=torch.long), x)) >= 0
        True
    """

    def __init__(self, teacher: nn.Module, *, temperature: float = 4.0, alpha: float = 0.9,
                 output_key: str | None = None, task: Task | None = None) -> None:
        if not temperature > 0:
            raise ConfigError("distill.temperature", "a number > 0", temperature)
        if not 0 <= alpha <= 1:
            raise ConfigError("distill.alpha", "a number in [0, 1]", alpha)
        self.teacher = copy.deepcopy(teacher).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.temperature, self.alpha, self.output_key = temperature, alpha, output_key
        self.task = None if is_classification(task) else task

    def __call__(self, logits, y: torch.Tensor, x) -> torch.Tensor:
        t = self.temperature
        inputs = ExampleInputs.of(x, "distill inputs")
        self.teacher.to(next(iter(inputs.tensors().values())).device)
        logits = main_output(logits, self.output_key, "distill.output_key")
        with torch.no_grad():
            taught = main_output(inputs(self.teacher), self.output_key, "distill.output_key")
            if self.task is not None:
                taught = taught.detach()
            else:
                soft_targets = F.log_softmax(taught / t, dim=1)
        if self.task is not None:
            return self.alpha * self.task.distill(logits, taught, t) + (1 - self.alpha) * self.task.loss(logits, y)
        soft = F.kl_div(F.log_softmax(logits / t, dim=1), soft_targets, reduction="batchmean", log_target=True)
        hard = F.cross_entropy(logits, y)
        return self.alpha * t * t * soft + (1 - self.alpha) * hard


@dataclass(frozen=True)
class Retrain:
    """How a compression step retrains: epochs, recipe, and distillation from the teacher.

    Every compressor that retrains takes one of these, so distillation is available in every
    retraining step.

    Example:
        >>> Retrain(epochs=5, distill=True, temperature=4.0).epochs
        5
    """

    epochs: int = 0
    train: TrainSpec = field(default_factory=lambda: FINETUNE_SPEC)
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.9
    seed: int = 0
    device: str = "cpu"
    #: called after every retraining epoch, in every step (a search's early stopping)
    callbacks: tuple[Callback, ...] = field(default=(), compare=False, repr=False)
    #: with a number, ``epochs`` is a cap: each step retrains until validation accuracy has not
    #: improved for this many epochs, and keeps its best epoch's weights
    patience: int | None = None
    #: run every epoch and keep the best one's weights (by validation accuracy), not the last's
    keep_best: bool = False
    #: the output distillation reads from a model answering with a dict or ``ModelOutput``
    #: (:class:`DistillationLoss`); ``None``: ``logits``, else the first floating-point output
    output_key: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError("retrain.epochs", "an integer >= 0", self.epochs)
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ConfigError("retrain.patience", "an integer >= 1 (or none)", self.patience)

    def loss_fn(self, teacher: nn.Module | None, task: Task | None = None):
        """The training loss: distillation from ``teacher`` when :attr:`distill`, else
        ``cross_entropy``, which :func:`~slimnas.training.fit` replaces by ``task``'s loss (also
        with :attr:`distill` for a task without a distillation term: a detector's own losses)."""
        if self.distill and teacher is not None and (task is None or task.distills):
            return DistillationLoss(teacher, temperature=self.temperature, alpha=self.alpha,
                                    output_key=self.output_key, task=task)
        return cross_entropy

    def run(
        self,
        model: nn.Module,
        data: DataSplits | None,
        teacher: nn.Module | None,
        *,
        epochs: int | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> History | None:
        """Fine-tune ``model`` in place on the training split; ``None`` when there is nothing to do."""
        n = self.epochs if epochs is None else epochs
        if n <= 0:
            return None
        if data is None:
            raise ConfigError("retrain", "dataset splits to retrain on (or epochs=0)")
        # with patience: stop at a plateau; keep_best alone: never stop early (patience past the end)
        task = getattr(data, "task", None)
        task = None if is_classification(task) else task  # classification trains as it always has
        quality = Quality.of(task)
        plateau = [PlateauStop(model, self.patience or n + 1, key=quality.key, direction=quality.direction)] \
            if self.patience or self.keep_best else []
        history = fit(model, data.x_train, data.y_train, self.train, x_val=data.x_val, y_val=data.y_val,
                      epochs=n, device=self.device, seed=self.seed, loss_fn=self.loss_fn(teacher, task),
                      callbacks=(*self.callbacks, *callbacks, *plateau), augment=getattr(data, "augment", None),
                      task=task)
        for p in plateau:
            p.restore()
        model.cpu().eval()
        return history

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("train", "callbacks")
               and not (k == "output_key" and self.output_key is None)}  # reports as before without one
        return {**out, "train": self.train.to_dict()}


class FineTuner(BaseCompressor):
    """A pipeline step that only retrains, with distillation when ``retrain.distill``.

    Example:
        >>> FineTuner(Retrain(epochs=2, distill=True)).get_params()["retrain"].epochs
        2
    """

    def __init__(self, retrain: Retrain = Retrain(epochs=1)) -> None:
        self._store(locals())

    def _fit(self, model, data, teacher, input_shape):
        history = self.retrain.run(model, data, teacher)
        key = Quality.of(getattr(data, "task", None)).key
        self.report_ = {"epochs": self.retrain.epochs, "distill": self.retrain.distill,
                        key: history.last.get(key) if history else None}
        return model
