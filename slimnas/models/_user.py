"""Users' own models: ``path/to/file.py:callable`` or ``package.module:callable``, and weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.registry import import_object, user_failure


def import_model(spec: str, weights: str | Path | None = None) -> tuple[nn.Module, Callable[[], nn.Module]]:
    """``(model, factory)`` from ``path/to/file.py:callable`` or ``package.module:callable``,
    with ``weights`` (a state dict) loaded by ``torch.load(..., weights_only=True)``."""
    factory = import_object(spec, "--model")
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
