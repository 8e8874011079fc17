"""Hugging Face token classifiers as slimnas takes models: one tensor in, class scores out.

slimnas hands text to a model as rows of token ids stored as numbers (the data are float
tensors, as :class:`~slimnas.models.TransformerNet` takes them), and probes every model with a
batch of zeros of the data's shape. A raw ``transformers`` model that takes ``input_ids``
(``BertForSequenceClassification``, built from a config) wants integer ids and answers with a
``ModelOutput``: :class:`TokenIdsModel` gives it integer ids (clamped into its vocabulary) and
returns its ``logits``, so probing, training, pruning and ONNX export see one tensor in, one out.
A model that takes the data's tensor but answers with a dict, a tuple or a ``ModelOutput`` gets
:class:`MainOutputModel` in the same places (its ``logits``, else its first floating-point output).
Compression steps themselves take such models without either (``example_inputs``,
:mod:`slimnas.models._io`); these adapters serve the data path, which feeds one tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from slimnas.models._io import main_output


class TokenIdsModel(nn.Module):
    """``model(input_ids=x.long()).logits`` for token ids ``x`` shaped ``(N, L)`` (or ``(N, 1, L)``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.vocab_size = int(model.config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.flatten(1).round().clamp(0, self.vocab_size - 1).long()
        return self.model(input_ids=ids).logits


class MainOutputModel(nn.Module):
    """``main_output(model(x))``: the ``logits`` (else the first floating-point output with a
    batch axis) of a model answering with a dict, a tuple or a ``ModelOutput``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return main_output(self.model(x))


def takes_token_ids(model: nn.Module) -> bool:
    """A ``transformers`` model whose input is ``input_ids`` and whose config names its vocabulary."""
    config = getattr(model, "config", None)
    return (getattr(model, "main_input_name", None) == "input_ids" and isinstance(getattr(config, "vocab_size", None), int)
            and type(model).__module__.startswith("transformers."))


def as_slimnas_model(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """``model``, or a raw Hugging Face token model wrapped in :class:`TokenIdsModel`; given the
    data's ``input_shape``, a detector (``boxes``, ``scores``, ``labels`` in eval mode) wrapped
    in :class:`~slimnas.models._detector.DetectorModel`, a model answering with anything else but
    a tensor (a dict, a ``ModelOutput``) in :class:`MainOutputModel`."""
    if takes_token_ids(model):
        return TokenIdsModel(model)
    if input_shape is not None:
        out = _probe(model, input_shape)
        from slimnas.tasks._detection import is_detections

        if is_detections(out):
            from slimnas.models._detector import DetectorModel

            return DetectorModel(model)
        if not isinstance(out, (torch.Tensor, type(None))):
            return MainOutputModel(model)
    return model


@torch.no_grad()
def _probe(model: nn.Module, input_shape: tuple[int, ...]):
    """The model's output on a batch of zeros, or ``None`` when it fails (a model that does not
    take the data is refused in one line later, by ``check_outputs``)."""
    was_training = model.training
    try:
        return model.eval()(torch.zeros(2, *input_shape))
    except (Exception, SystemExit):  # noqa: BLE001 - the user's model: its failure is reported by check_outputs
        return None
    finally:
        model.train(was_training)
