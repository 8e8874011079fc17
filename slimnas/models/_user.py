"""Users' own models: ``path/to/file.py:callable`` or ``package.module:callable``, and weights."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from slimnas.errors import ConfigError, SlimnasError


def import_model(spec: str, weights: str | Path | None = None) -> tuple[nn.Module, Callable[[], nn.Module]]:
    """``(model, factory)`` from ``path/to/file.py:callable`` or ``package.module:callable``,
    with ``weights`` (a state dict) loaded by ``torch.load(..., weights_only=True)``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError("--model", "'path/to/file.py:callable' or 'package.module:callable'", spec)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError("--model", "an existing Python file before ':'", target)
            mod_spec = importlib.util.spec_from_file_location(f"slimnas_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except SlimnasError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any import failure is the user's file
        raise ConfigError("--model", "a module that imports", f"{target} ({user_failure(e)})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError("--model", f"a callable named {attr!r} in {target}", spec)
    try:
        model = factory()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's callable failed (or tried to end the process)
        raise ConfigError("--model", "a callable that builds the model without arguments",
                          f"{spec} ({user_failure(e)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError("--model", "a callable returning a torch.nn.Module", type(model).__name__)
    if weights is not None:
        load_weights(model, weights)
    from slimnas.models._hf import as_slimnas_model

    model = as_slimnas_model(model)  # a raw Hugging Face token model: integer ids in, logits out
    return model.eval(), lambda: as_slimnas_model(factory())


def user_failure(error: BaseException) -> str:
    """What user code (a model file, its factory, a plug-in) raised, in one line; a
    ``sys.exit()`` there is a failure too, never the command's own exit."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def load_weights(model: nn.Module, weights: str | Path) -> None:
    """Load a state dict into ``model`` (``weights_only=True``: pickled code never runs)."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError("--weights", "an existing state-dict file", str(path))
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ConfigError("--weights", "a state dict saved with torch.save", f"{path} ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise ConfigError("--weights", "weights that match the model", f"{path}: {detail}") from None


def check_outputs(model: nn.Module, input_shape: tuple[int, ...], n_classes: int, field: str = "--model") -> None:
    """Raise :class:`ConfigError` unless ``model`` takes a batch of ``input_shape`` samples and
    returns one row of ``n_classes`` scores per sample (its training mode is left as it was)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's model does not take this data
        raise ConfigError(field, f"a model taking inputs shaped {tuple(input_shape)}", user_failure(e)) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(field, f"a model returning (batch, {n_classes}) class scores for data of {n_classes} "
                          "classes", f"outputs shaped {got} for a batch of 2")
