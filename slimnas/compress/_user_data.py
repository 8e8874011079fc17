"""``train=`` / ``val=`` / ``test=`` Datasets or DataLoaders and the user's training step and
score function for the library's ``compress`` and ``auto_compress`` (:func:`takes_user_data`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from slimnas.data._loaders import BatchForm, splits_from_loaders
from slimnas.errors import ConfigError
from slimnas.export._info import read_run_info, write_run_info
from slimnas.training._user import UserTraining, using


def record_form(out, form: BatchForm | None) -> None:
    """Add a packed ``batch_form`` to ``out``'s ``run.json`` (a library compress output), so
    :func:`slimnas.load` rebuilds the model the weights were saved from."""
    from pathlib import Path

    info = read_run_info(out) if out is not None and Path(out).is_dir() else {}
    if form is None or not form.packed or "input_shape" not in info:
        return
    write_run_info(out, info.pop("input_shape"), info.pop("n_classes"), **{**info, "batch_form": form.to_dict()})


def takes_user_data(fn: Callable) -> Callable:
    """Let ``fn(model, data, ...)`` (``compress``, ``auto_compress``) take the user's data and
    training instead of ``data``: ``train=`` / ``val=`` / ``test=`` Datasets or DataLoaders (read
    by :func:`~slimnas.data._loaders.splits_from_loaders`, with ``task=``), ``train_step=``,
    ``score_fn=``, ``score_primary=`` and ``score_direction=`` (:class:`UserTraining`)."""
    takes_task = "task" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def wrapper(model, data=None, *args, train=None, val=None, test=None, task=None, train_step=None,
                score_fn=None, score_primary=None, score_direction="maximize", **kwargs):
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
            record_form(kwargs["out"], getattr(data, "batch_form", None))
        return result

    wrapper.__doc__ = (fn.__doc__ or "") + USER_DATA_DOC
    return wrapper


USER_DATA_DOC = """
    Your own data and training (``slimnas.compress._user_data.takes_user_data``): instead of ``data``,
    ``train=``, ``val=`` and ``test=`` take torch Datasets or DataLoaders of ``(inputs, target)``
    or dict batches with a ``labels`` key (``task=``: their task, default classification);
    ``train_step=(model, batch, optimizer) -> loss`` and ``score_fn=(model, loader) -> dict``
    (``score_primary=``, ``score_direction=``), when given, do every fine-tune and every score.
"""
