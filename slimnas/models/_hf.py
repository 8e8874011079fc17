"""Hugging Face token classifiers as slimnas takes models: one tensor in, class scores out.

slimnas hands text to a model as rows of token ids stored as numbers (the data are float
tensors, as :class:`~slimnas.models.TransformerNet` takes them), and probes every model with a
batch of zeros of the data's shape. A raw ``transformers`` model that takes ``input_ids``
(``BertForSequenceClassification``, built from a config) wants integer ids and answers with a
``ModelOutput``: :class:`TokenIdsModel` gives it integer ids (clamped into its vocabulary) and
returns its ``logits``, so probing, training, pruning and ONNX export see one tensor in, one out.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenIdsModel(nn.Module):
    """``model(input_ids=x.long()).logits`` for token ids ``x`` shaped ``(N, L)`` (or ``(N, 1, L)``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.vocab_size = int(model.config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x.flatten(1).round().clamp(0, self.vocab_size - 1).long()
        return self.model(input_ids=ids).logits


def takes_token_ids(model: nn.Module) -> bool:
    """A ``transformers`` model whose input is ``input_ids`` and whose config names its vocabulary."""
    config = getattr(model, "config", None)
    return (getattr(model, "main_input_name", None) == "input_ids" and isinstance(getattr(config, "vocab_size", None), int)
            and type(model).__module__.startswith("transformers."))


def as_slimnas_model(model: nn.Module) -> nn.Module:
    """``model``, or a raw Hugging Face token model wrapped in :class:`TokenIdsModel`."""
    return TokenIdsModel(model) if takes_token_ids(model) else model
