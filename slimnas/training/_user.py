"""The user's own training step and score function (NNI's ``Evaluator``, Model Optimizer's
``score_func``): when given, every fine-tune and every score of a compression goes through them.

:class:`UserTraining` holds them; :func:`using` makes them the ones :func:`~slimnas.training.fit`
and :func:`~slimnas.training.evaluate` use in this thread, and ONNX Runtime scores
(:func:`~slimnas.export.onnx_accuracy`) too, through a module that runs the exported file:

- ``train_step(model, batch, optimizer) -> loss``: one optimisation step on one batch in the
  user's own form (a dict with its ``labels``, an ``(inputs, target)`` pair), on the user's own
  model (slimnas's adapters taken off); it calls ``backward`` and ``optimizer.step()`` itself and
  returns the batch's loss (a number or a scalar tensor). slimnas keeps the epochs, the shuffling,
  the learning-rate schedule and early stopping; the distillation loss does not apply.
- ``score_fn(model, loader) -> dict[str, float]``: the scores of ``model`` on ``loader`` (an
  iterable of batches in the user's form, with their targets), the one named ``primary`` (default:
  the first) ranked in ``direction``. It is the validation figure everything else reads (early
  stopping, sensitivity, the search's objective, the before/after reports' ``val_accuracy`` and
  ``test_accuracy``, named so there), scored on the eager model while fine-tuning and on the
  exported ONNX file where the file is measured.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from slimnas.errors import ConfigError

_state = threading.local()


@dataclass
class UserTraining:
    """A user training step and / or score function, and the form of the user's batches
    (:class:`~slimnas.data._loaders.BatchForm`; ``None``: ``(x, y)`` tensor pairs)."""

    train_step: Callable | None = None
    score_fn: Callable | None = None
    primary: str | None = None
    direction: str = "maximize"
    form: object = None
    batch_size: int = 256

    def __post_init__(self) -> None:
        for name in ("train_step", "score_fn"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ConfigError(name, "a function", type(getattr(self, name)).__name__)
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError("score_direction", "maximize or minimize", self.direction)

    def batch(self, x: torch.Tensor, y: torch.Tensor):
        return self.form.batch(x, y) if self.form is not None else (x, y)

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer) -> float:
        """One user training step on the batch ``(x, y)``; its loss as a number."""
        from slimnas.data._loaders import unwrap

        loss = self.train_step(unwrap(model), self.batch(x, y), optimizer)
        try:
            return float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError("train_step", "a function returning the batch's loss (a number or a scalar tensor)",
                              type(loss).__name__) from None

    def loader(self, x: torch.Tensor, y: torch.Tensor, device) -> list:
        return [self.batch(x[i : i + self.batch_size].to(device), y[i : i + self.batch_size].to(device))
                for i in range(0, len(y), self.batch_size)]

    @torch.no_grad()
    def score(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """The user's scores of ``model`` on ``(x, y)`` in eval mode, with ``accuracy``: the
        primary score, negated when lower is better (so higher is better everywhere)."""
        from slimnas.data._loaders import unwrap

        params = next(model.parameters(), None)
        device = params.device if params is not None else torch.device("cpu")
        was_training = model.training
        model.eval()
        try:
            scores = self.score_fn(unwrap(model), self.loader(x, y, device))
        finally:
            model.train(was_training)
        if not isinstance(scores, Mapping) or not scores:
            raise ConfigError("score_fn", "a function returning a dict of scores {name: number}",
                              type(scores).__name__)
        out = {str(k): float(v) for k, v in scores.items()}
        primary = self.primary or next(iter(out))
        if primary not in out:
            raise ConfigError("score_primary", f"one of the scores score_fn returns {list(out)}", primary)
        value = out[primary]
        if not math.isfinite(value):
            raise ConfigError(f"score_fn {primary}", "a finite number", value)
        out["accuracy"] = value if self.direction == "maximize" else -value
        return out


def active() -> UserTraining | None:
    """The user training step / score function in use in this thread, if any."""
    return getattr(_state, "user", None)


@contextmanager
def using(user: UserTraining | None) -> Iterator[None]:
    """Make ``user`` the training step / score function of :func:`fit` / :func:`evaluate` and
    ONNX Runtime scores within the block (nothing changes with ``None``)."""
    before = active()
    _state.user = user if user is not None else before
    try:
        yield
    finally:
        _state.user = before
