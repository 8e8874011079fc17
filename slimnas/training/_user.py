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

import functools
import inspect
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
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


class _Outputs(dict):
    """A dict of outputs read like a Hugging Face ``ModelOutput``: ``out.logits``, ``out[0]``."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


class OnnxModule(nn.Module):
    """An exported ONNX file run in ONNX Runtime, called as the user's model is (the user's batch
    inputs in; its main output out, as ``.logits`` where the user's model answers with a dict):
    what a score function gets to score the file itself."""

    def __init__(self, onnx, form=None) -> None:
        super().__init__()
        from slimnas.export._session import ort_session

        self.session, self.form = ort_session(onnx), form
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.dtype = np.int64 if first.type == "tensor(int64)" else np.float32

    def forward(self, *args, **kwargs):
        from slimnas.models._io import ExampleInputs

        x = self.form.pack(ExampleInputs(tuple(args), kwargs)) if self.form is not None else args[0]
        out = torch.from_numpy(self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(self.dtype)})[0])
        return _Outputs(logits=out) if self.form is not None and self.form.dict_output else out


def onnx_score(onnx, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """The active score function's primary score (higher is better) of the ONNX file on
    ``(x, y)``, or ``None`` without one."""
    user = active()
    if user is None or user.score_fn is None:
        return None
    return user.score(OnnxModule(onnx, user.form), x, y)["accuracy"]


def takes_user_data(fn: Callable) -> Callable:
    """Let ``fn(model, data, ...)`` (``compress``, ``auto_compress``) take the user's data and
    training instead of ``data``: ``train=`` / ``val=`` / ``test=`` Datasets or DataLoaders (read
    by :func:`~slimnas.data._loaders.splits_from_loaders`, with ``task=``), ``train_step=``,
    ``score_fn=``, ``score_primary=`` and ``score_direction=`` (:class:`UserTraining`)."""
    takes_task = "task" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def wrapper(model, data=None, *args, train=None, val=None, test=None, task=None, train_step=None,
                score_fn=None, score_primary=None, score_direction="maximize", **kwargs):
        from slimnas.data._loaders import splits_from_loaders

        if train is not None or val is not None or test is not None:
            if data is not None and not hasattr(data, "x_train"):  # compress(model, policy, train=...)
                args, data = (data, *args), None
            if data is not None:
                raise ConfigError("data", "either dataset splits or train= / val= Datasets or DataLoaders, not both")
            if train is None:
                raise ConfigError("train", "training data (a Dataset or DataLoader) beside val=")
            model, data = splits_from_loaders(model, train, val, test, task=task)
        elif data is None:
            raise ConfigError("data", "dataset splits, or train= and val= Datasets or DataLoaders")
        elif task is not None:
            if not takes_task:
                raise ConfigError("task", "train= / val= data to go with it (or splits carrying their task)", task)
            kwargs["task"] = task
        user = None
        if train_step is not None or score_fn is not None:
            user = UserTraining(train_step, score_fn, score_primary, score_direction,
                                form=getattr(data, "batch_form", None))
        with using(user):
            result = fn(model, data, *args, **kwargs)
        if kwargs.get("out") is not None:  # slimnas.load rebuilds a packed model from run.json
            from slimnas.data._loaders import record_form

            record_form(kwargs["out"], getattr(data, "batch_form", None))
        return result

    wrapper.__doc__ = (fn.__doc__ or "") + USER_DATA_DOC
    return wrapper


USER_DATA_DOC = """
    Your own data and training (``slimnas.training._user.takes_user_data``): instead of ``data``,
    ``train=``, ``val=`` and ``test=`` take torch Datasets or DataLoaders of ``(inputs, target)``
    or dict batches with a ``labels`` key (``task=``: their task, default classification);
    ``train_step=(model, batch, optimizer) -> loss`` and ``score_fn=(model, loader) -> dict``
    (``score_primary=``, ``score_direction=``), when given, do every fine-tune and every score.
"""
