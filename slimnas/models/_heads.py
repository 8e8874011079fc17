"""Attention modules recognised by their structure, whatever their layers are called.

An attention module is one that owns three ``nn.Linear`` projections of the same output width
(query, key and value; the output projection, when the module owns it too, comes after them)
and says how many heads it has: ``num_attention_heads`` (BERT, ViT), ``n_heads``
(DistilBERT), ``num_heads`` (GPT-2, timm, PyTorch), ``n_head``, ``heads``, or, where it holds
a head width, its ``config.num_attention_heads``. Its head width is its ``head_dim``,
``attention_head_size``, ``head_size``, ``dim_per_head`` or ``key_value_proj_dim``, or the
projection width over the head count. Layer names are never read: BERT's ``query``,
DistilBERT's ``q_lin``, ViT's ``q_proj`` (transformers 5) or ``query`` (transformers 4) are
recognised alike.

:func:`separate_projections` first rewrites, in place, what hides the projections from this:
Hugging Face's ``Conv1D`` (GPT-2; a Linear with its weight transposed) becomes an
``nn.Linear``, and a fused query/key/value layer (GPT-2's ``c_attn``, out width three times
the heads' width) becomes a :class:`FusedProjection` of three Linear layers.

After heads are removed, :meth:`AttentionBlock.sync` updates the module's own head count and
width attributes (those Hugging Face's own ``prune_heads`` updates: ``num_attention_heads``,
``all_head_size``, GPT-2's ``num_heads`` and ``split_size``, DistilBERT's ``n_heads`` and
``dim``, ...), and :func:`head_attributes` gives them for ``structure.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from slimnas.models._attention import FusedProjection

#: attributes holding a module's number of heads
HEAD_COUNTS = ("num_attention_heads", "num_heads", "n_heads", "n_head", "heads")
#: attributes holding the width of one head
HEAD_DIMS = ("head_dim", "attention_head_size", "head_size", "dim_per_head", "key_value_proj_dim")
#: attributes holding the width of all heads together, as Hugging Face's own ``prune_heads``
#: updates them (GPT-2 splits its fused output by ``split_size``; DistilBERT under
#: transformers 4 reshapes by ``dim``)
INNER_WIDTHS = ("all_head_size", "split_size", "inner_dim", "dim")


def _inner_widths(module: nn.Module) -> tuple[str, ...]:
    """:data:`INNER_WIDTHS`, and ``embed_dim`` where a fused projection three times that wide
    was split (GPT-2: under transformers 4 its SDPA attention reshapes by ``embed_dim``;
    elsewhere, as in ``nn.MultiheadAttention``, ``embed_dim`` is the embedding width)."""
    fused = any(isinstance(c, FusedProjection) for c in module.children())
    return (*INNER_WIDTHS, "embed_dim") if fused else INNER_WIDTHS


def _int_attr(obj: object, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def head_count(module: nn.Module) -> int | None:
    """The number of heads ``module`` says it has, or ``None``."""
    n = _int_attr(module, HEAD_COUNTS)
    if n is None and getattr(module, "config", None) is not None and _int_attr(module, HEAD_DIMS):
        n = _int_attr(module.config, ("num_attention_heads", "n_head", "num_heads"))  # only beside a head width
    return n


@dataclass
class AttentionBlock:
    """One attention module, its query/key/value projections and the width of one head."""

    module: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    head_dim: int
    synced_heads: int = field(init=False)  # the head count the module's attributes state

    def __post_init__(self) -> None:
        self.synced_heads = self.heads

    @property
    def heads(self) -> int:
        return self.query.out_features // self.head_dim

    def sync(self) -> None:
        """Set the module's own head count and all-heads width attributes (those that held the
        old values) to the heads left, after heads were removed."""
        old, new = self.synced_heads, self.heads
        state = vars(self.module)
        for name in HEAD_COUNTS:
            if state.get(name) == old:
                setattr(self.module, name, new)
        for name in _inner_widths(self.module):
            if state.get(name) == old * self.head_dim:
                setattr(self.module, name, new * self.head_dim)
        self.synced_heads = new


def find_attention(module: nn.Module) -> AttentionBlock | None:
    """``module`` as an :class:`AttentionBlock`, or ``None`` when it is not one (see the
    module's docstring for what is recognised)."""
    heads = head_count(module)
    if heads is None:
        return None
    children = list(module.children())
    fused = [c for c in children if isinstance(c, FusedProjection)]
    if len(fused) == 1:
        q, k, v = fused[0].query, fused[0].key, fused[0].value
    else:
        linears = [c for c in children if isinstance(c, nn.Linear)]
        dim = _int_attr(module, HEAD_DIMS)
        widths = {heads * dim} if dim else {m.out_features for m in linears if m.out_features % heads == 0}
        found = None
        for width in sorted(widths):
            same = [m for m in linears if m.out_features == width]
            if len(same) == 4 and same[3].in_features == width:
                same = same[:3]  # a square output projection, defined after the ones it reads
            if len(same) == 3:
                if found is not None:
                    return None  # two candidate sets: ambiguous
                found = same
        if found is None:
            return None
        q, k, v = found
    dim = _int_attr(module, HEAD_DIMS) or q.out_features // heads
    if not (k.out_features == v.out_features == q.out_features) or q.out_features != heads * dim:
        return None
    return AttentionBlock(module, q, k, v, dim)


def attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    """Every attention module of ``model`` whose heads can be pruned."""
    return [b for b in map(find_attention, model.modules()) if b is not None]


def head_attributes(module: nn.Module) -> dict[str, int]:
    """The head count and all-heads width attributes ``module`` holds itself (not properties)."""
    state = vars(module)
    return {n: state[n] for n in (*HEAD_COUNTS, *_inner_widths(module))
            if isinstance(state.get(n), int) and not isinstance(state.get(n), bool)}


def _hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2, GPT): ``x @ weight + bias``, weight ``(in, out)``."""
    return (type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")
            and isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2)


@torch.no_grad()
def _as_linear(conv: nn.Module) -> nn.Linear:
    n_in, n_out = conv.weight.shape
    bias = getattr(conv, "bias", None)
    layer = nn.Linear(n_in, n_out, bias=bias is not None).to(conv.weight.dtype)
    layer.weight.copy_(conv.weight.t())
    if bias is not None:
        layer.bias.copy_(bias)
    return layer.train(conv.training)


def _fused_child(module: nn.Module) -> str | None:
    """The name of ``module``'s fused query/key/value Linear child, if it is an attention
    module with one (out width three times the heads' width, and no separate projections)."""
    heads = head_count(module)
    if heads is None or find_attention(module) is not None:
        return None
    linears = {n: c for n, c in module.named_children() if isinstance(c, nn.Linear)}
    dim = _int_attr(module, HEAD_DIMS)
    for name, layer in linears.items():
        inner = layer.out_features // 3
        if layer.out_features % 3 or inner % heads or (dim and inner != heads * dim):
            continue
        if any(o is not layer and o.in_features == inner for o in linears.values()):  # the output projection
            return name
    return None


def needs_separating(model: nn.Module) -> bool:
    """Whether :func:`separate_projections` would change ``model``."""
    return any(_hf_conv1d(m) or _fused_child(m) is not None for m in model.modules())


def separate_projections(model: nn.Module) -> list[str]:
    """Rewrite ``model`` in place so its attention is recognised: Hugging Face ``Conv1D``
    layers become ``nn.Linear``, fused query/key/value layers :class:`FusedProjection`.
    Returns the names of the fused layers split."""
    for name, m in list(model.named_modules()):
        if name and _hf_conv1d(m):
            model.set_submodule(name, _as_linear(m))
    split = []
    for name, m in list(model.named_modules()):
        child = _fused_child(m)
        if child is not None:
            m.set_submodule(child, FusedProjection.from_fused(getattr(m, child)))
            split.append(f"{name}.{child}" if name else child)
    return split
