"""Multi-head attention with one Linear layer per projection, so whole heads can be removed.

PyTorch's ``nn.MultiheadAttention`` packs the query, key and value projections into one
parameter whose width must stay ``embed_dim``: structured pruning can shrink the embedding but
not drop a head. Here the three projections are separate ``nn.Linear`` layers (as in BERT) and
the number of heads is read from their width at run time (``width // head_dim``), so a pruned
layer is still a consistent module: torch-pruning removes a head's rows from all three and the
matching columns of the output projection, and nothing else has to be updated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, head_dim: int,
            mask: torch.Tensor | None = None, dropout: float = 0.0) -> torch.Tensor:
    """Scaled dot-product attention of ``(N, T, heads * head_dim)`` projections, heads merged
    back into ``(N, T, heads * head_dim)``. ``mask`` is added to the scores (``-inf``: masked);
    ``dropout`` (training only) drops attention probabilities."""
    n, t, _ = q.shape
    s = k.shape[1]
    q = q.reshape(n, t, -1, head_dim).transpose(1, 2)
    k = k.reshape(n, s, -1, head_dim).transpose(1, 2)
    v = v.reshape(n, s, -1, head_dim).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(-1)
    if dropout > 0:
        probs = F.dropout(probs, dropout)
    return torch.matmul(probs, v).transpose(1, 2).reshape(n, t, -1)


class SelfAttention(nn.Module):
    """Multi-head self-attention on ``(N, T, dim)`` with separate query/key/value projections.

    Example:
        >>> attn = SelfAttention(32, heads=4)
        >>> attn(torch.zeros(2, 5, 32)).shape
        torch.Size([2, 5, 32])
    """

    def __init__(self, dim: int, heads: int, head_dim: int | None = None) -> None:
        super().__init__()
        self.head_dim = head_dim or max(1, dim // heads)
        inner = heads * self.head_dim
        self.query = nn.Linear(dim, inner)
        self.key = nn.Linear(dim, inner)
        self.value = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)

    @property
    def heads(self) -> int:
        return self.query.out_features // self.head_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask``: added to the attention scores (``-inf`` above the diagonal: causal)."""
        return self.out(_attend(self.query(x), self.key(x), self.value(x), self.head_dim, mask))


class SplitMultiheadAttention(nn.Module):
    """A drop-in for ``nn.MultiheadAttention`` (same call, same outputs) whose projections are
    separate Linear layers, so heads can be pruned; built from one by :meth:`from_mha`.

    It takes the same arguments (masks, ``batch_first``); it never returns attention weights
    (the second output is ``None``), which is what ``nn.TransformerEncoderLayer`` asks for.
    """

    #: ``nn.TransformerEncoderLayer`` reads these to decide on its fused fast path: a module
    #: without a packed ``in_proj`` never takes it
    in_proj_weight = None
    in_proj_bias = None
    _qkv_same_embed_dim = False

    def __init__(self, embed_dim: int, head_dim: int, inner: int, *, kdim: int | None = None,
                 vdim: int | None = None, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.embed_dim, self.head_dim, self.batch_first, self.dropout = embed_dim, head_dim, batch_first, dropout
        self.query = nn.Linear(embed_dim, inner, bias=bias)
        self.key = nn.Linear(kdim or embed_dim, inner, bias=bias)
        self.value = nn.Linear(vdim or embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    @property
    def num_heads(self) -> int:
        return self.query.out_features // self.head_dim

    @staticmethod
    def unsupported(mha: nn.MultiheadAttention) -> str | None:
        """Why ``mha`` cannot be converted (``None`` when it can)."""
        if mha.bias_k is not None or mha.bias_v is not None:
            return "add_bias_kv is not supported"
        if mha.add_zero_attn:
            return "add_zero_attn is not supported"
        return None

    @classmethod
    @torch.no_grad()
    def from_mha(cls, mha: nn.MultiheadAttention) -> SplitMultiheadAttention:
        """The same computation as ``mha``, with its weights split into the three projections."""
        e = mha.embed_dim
        bias = mha.in_proj_bias is not None
        new = cls(e, mha.head_dim, e, kdim=mha.kdim, vdim=mha.vdim, bias=bias, batch_first=mha.batch_first,
                  dropout=mha.dropout)
        if mha._qkv_same_embed_dim:
            weights = mha.in_proj_weight.chunk(3)
        else:
            weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
        for layer, w, b in zip((new.query, new.key, new.value), weights, biases, strict=True):
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
        new.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.out_proj.bias is not None and new.out_proj.bias is not None:
            new.out_proj.bias.copy_(mha.out_proj.bias)
        return new.train(mha.training)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, t, s = query.shape[0], query.shape[1], key.shape[1]
        mask = None
        if attn_mask is not None:  # (T, S) for every sample and head, or (N * heads, T, S)
            am = _additive(attn_mask, query.dtype)
            mask = am.reshape(n, -1, t, s) if am.dim() == 3 else am
        elif is_causal:
            mask = torch.triu(torch.full((t, s), float("-inf"), device=query.device), 1)
        if key_padding_mask is not None:
            kp = _additive(key_padding_mask, query.dtype).reshape(n, 1, 1, s)
            mask = kp if mask is None else mask + kp
        drop = self.dropout if self.training else 0.0
        out = self.out_proj(_attend(self.query(query), self.key(key), self.value(value), self.head_dim, mask, drop))
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, None


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (``True``: not attended) as ``-inf`` scores; a float mask as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


class FusedProjection(nn.Module):
    """One fused query/key/value projection (GPT-2's ``c_attn``, a ViT's ``qkv``) as three
    ``nn.Linear`` layers whose outputs are concatenated: the same ``[q | k | v]`` output the
    fused layer gives, but each head's rows are separate, so whole heads can be removed.
    Built from a fused layer by :meth:`from_fused`.
    """

    def __init__(self, query: nn.Module, key: nn.Module, value: nn.Module) -> None:
        super().__init__()
        self.query, self.key, self.value = query, key, value

    @classmethod
    @torch.no_grad()
    def from_fused(cls, fused: nn.Linear) -> FusedProjection:
        """The same computation as ``fused`` (out width ``3 * inner``), split into thirds."""
        inner = fused.out_features // 3
        parts = []
        for i in range(3):
            layer = nn.Linear(fused.in_features, inner, bias=fused.bias is not None)
            layer.weight.copy_(fused.weight[i * inner:(i + 1) * inner])
            if fused.bias is not None:
                layer.bias.copy_(fused.bias[i * inner:(i + 1) * inner])
            parts.append(layer.to(fused.weight.dtype))
        return cls(*parts).train(fused.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.query(x), self.key(x), self.value(x)], dim=-1)
