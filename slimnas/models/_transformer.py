"""The Transformer family: a pre-norm encoder (Vaswani et al. 2017; pre-norm as in ViT,
Dosovitskiy et al. 2021) with a mean-pooled classification head.

Inputs become tokens one of two ways: token ids (text: ``vocab_size > 0``, which a search on
text data sets to the data's vocabulary; samples shaped ``(L,)`` or ``(1, L)`` holding ids,
integers or floats, so exported files take the float input every slimnas file takes, looked up
in an embedding table), or values
(sequences ``(C, L)``, images ``(C, H, W)``): each step, or each ``patch``-wide group of steps
or ``patch x patch`` image patch, is projected linearly to ``dim`` (a convolution whose kernel
is its stride). A learned position embedding is added. Each block is
``x + attention(norm(x))`` then ``x + mlp(norm(x))``; attention heads have separate query, key
and value projections (:class:`SelfAttention`), so heads and MLP neurons can be pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._attention import SelfAttention
from slimnas.models._tokens import check_id_inputs, check_per_token, embed_ids
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import DROPOUT, layer_count, positive_int


@dataclass(frozen=True)
class TransformerSpec:
    """Transformer encoder: ``depth`` blocks of ``heads``-head attention and an MLP of
    ``mlp_ratio * dim`` neurons, on ``dim``-wide tokens."""

    family: ClassVar[str] = "transformer"
    depth: int = 2
    heads: int = 4
    dim: int = 64
    mlp_ratio: float = 2.0
    vocab_size: int = 0  # > 0: inputs are token ids below it (a search on text sets it); 0: values
    patch: int = 1  # steps (or image pixels per side) per token, for value inputs
    dropout: float = 0.0
    #: "": one output per sample (mean-pooled); "tokens": one per position; "causal": one per
    #: position, each attending to itself and earlier positions only (a language model). A
    #: search of a per-token task sets it; arch.json has it only when set.
    per_token: str = ""


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block: attention and an MLP, each around a residual sum."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.fc2(self.act(self.fc1(self.norm2(x)))))


class TransformerNet(nn.Module):
    def __init__(self, spec: TransformerSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        if spec.heads > spec.dim:
            raise ConfigError("space.transformer.heads", f"at most dim ({spec.dim}) heads", spec.heads)
        self.vocab_size = spec.vocab_size
        if spec.vocab_size > 0:
            n_tokens = check_id_inputs(input_shape, spec.vocab_size, "transformer")
            self.embed: nn.Module = nn.Embedding(spec.vocab_size, spec.dim)
        else:
            if len(input_shape) not in (2, 3):
                raise ConfigError("space.family", "inputs shaped (C, L) or (C, H, W) for 'transformer' "
                                  "(or token ids with transformer.vocab_size)", f"input {input_shape}")
            conv = nn.Conv1d if len(input_shape) == 2 else nn.Conv2d
            if any(spec.patch > d for d in input_shape[1:]):
                raise ConfigError("space.transformer.patch", f"at most the input's size {input_shape[1:]}", spec.patch)
            self.embed = conv(input_shape[0], spec.dim, spec.patch, stride=spec.patch)
            n_tokens = 1
            for d in input_shape[1:]:
                n_tokens *= d // spec.patch
        self.pos = nn.Parameter(torch.randn(1, n_tokens, spec.dim) * 0.02)
        hidden = max(1, round(spec.mlp_ratio * spec.dim))
        self.blocks = nn.Sequential(*[EncoderBlock(spec.dim, spec.heads, hidden, spec.dropout)
                                      for _ in range(spec.depth)])
        self.norm = nn.LayerNorm(spec.dim)
        self.classifier = nn.Linear(spec.dim, n_classes)
        self.per_token = check_per_token(spec.per_token, "transformer")
        if spec.per_token == "causal":  # position i attends to positions <= i
            mask = torch.full((n_tokens, n_tokens), float("-inf")).triu(1)
            self.register_buffer("mask", mask, persistent=False)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.vocab_size > 0:
            return embed_ids(self.embed, x)
        return self.embed(x).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_token:
            h = self.blocks(self.tokens(x) + self.pos)
            return self.classifier(self.norm(h).mean(1))
        h = self.tokens(x) + self.pos
        mask = self.mask if self.per_token == "causal" else None
        for block in self.blocks:
            h = block(h, mask)
        return self.classifier(self.norm(h))  # (N, L, outputs): one prediction per position


@register_family("transformer")
class TransformerFamily(BaseFamily):
    spec = TransformerSpec
    data_kinds = ("tabular", "sequence", "image", "text")
    optional_fields = ("per_token",)  # a pooled head: arch.json as it always was
    keys = {
        "depth": layer_count([1, 2]),
        "heads": positive_int([2, 4]),
        "dim": positive_int([32, 64]),
        "mlp_ratio": Key(float, "numbers > 0", [2.0, 4.0], lambda v: v > 0),
        "vocab_size": Key(int, "integers >= 0 (0: the vocabulary of text data; values otherwise)", 0,
                          lambda v: v >= 0),
        "patch": positive_int(1),
        "dropout": DROPOUT,
    }

    def sample(self, draw) -> TransformerSpec:
        return TransformerSpec(depth=draw("depth"), heads=draw("heads"), dim=draw("dim"), mlp_ratio=draw("mlp_ratio"),
                               vocab_size=draw("vocab_size"), patch=draw("patch"), dropout=draw("dropout"))

    def check(self, params, field) -> None:
        heads, dim = max(params["heads"].choices()), min(params["dim"].choices())
        if heads > dim:
            raise ConfigError(f"{field}.heads", f"at most the smallest dim ({dim}) heads (each head is at least "
                              "one of dim's features wide)", heads)

    def build(self, spec: TransformerSpec, input_shape, n_classes) -> nn.Module:
        return TransformerNet(spec, tuple(input_shape), n_classes)

    def summary(self, spec: TransformerSpec) -> str:
        """``transformer 2x64 h4 mlp2 p1``: depth x token width, heads, MLP ratio, steps per token
        (``vocab`` and its size for token-id inputs), and a per-token head (``causal``)."""
        tokens = f"vocab{spec.vocab_size}" if spec.vocab_size else f"p{spec.patch}"
        head = f" {spec.per_token}" if spec.per_token else ""
        return f"transformer {spec.depth}x{spec.dim} h{spec.heads} mlp{spec.mlp_ratio:g} {tokens}{head}"

