"""Tiny Hugging Face models built from configs (no downloads), one per attention layout, for
the head-pruning tests and as ``--model hf_models.py:NAME`` for the command line. Each takes
slimnas's float inputs: token ids of shape ``(1, 12)`` (rounded, clamped) or ``(1, 8, 8)`` images.

- BERT: ``query``/``key``/``value`` in a self-attention module, ``num_attention_heads``;
- DistilBERT: ``q_lin``/``k_lin``/``v_lin`` and the output projection in one module, ``n_heads``;
- ViT: ``q_proj``/``k_proj``/``v_proj`` (transformers 5; ``query``/... in 4), images;
- GPT-2: one fused ``Conv1D`` query/key/value layer split by ``split_size``, ``num_heads``, a
  key/value cache by default, and a language-model head tied to the token embedding.
"""

from __future__ import annotations

import torch
import transformers
from torch import nn

VOCAB = 30
TEXT_SHAPE = (1, 12)
IMAGE_SHAPE = (1, 8, 8)
SMALL = {"num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 32,
         "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


class TextClassifier(nn.Module):
    """A Hugging Face text model on slimnas's float token ids: class scores per sequence."""

    def __init__(self, model: nn.Module, last_token: bool = False) -> None:
        super().__init__()
        self.model, self.last_token = model, last_token

    def forward(self, x):
        logits = self.model(input_ids=x.flatten(1).round().clamp(0, VOCAB - 1).long()).logits
        return logits[:, -1, :10] if self.last_token else logits  # a language model: 10 of its token scores


class ImageClassifier(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_labels=10, **SMALL)
    return TextClassifier(transformers.BertForSequenceClassification(config)).eval()


def distilbert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                           max_position_embeddings=32, num_labels=10, dropout=0.0,
                                           attention_dropout=0.0, seq_classif_dropout=0.0)
    return TextClassifier(transformers.DistilBertForSequenceClassification(config)).eval()


def vit() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=32, num_labels=10,
                                    **{k: v for k, v in SMALL.items() if k != "max_position_embeddings"})
    return ImageClassifier(transformers.ViTForImageClassification(config)).eval()


def gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                     eos_token_id=0)
    return TextClassifier(transformers.GPT2LMHeadModel(config), last_token=True).eval()
