"""Layer kinds structured pruning handles beyond torch-pruning's own: recurrent hidden units
(GRU/LSTM, every layer and direction) and attention heads.

Recurrent layers get a pruning function of ours through torch-pruning's custom-layer hook. A
unit is removed from every layer and direction of the module at once (the rows of all its
gates, and the matching inputs of the next layer), so one ``nn.GRU``/``nn.LSTM`` stays one
module. A bidirectional layer declares two output channel groups, so torch-pruning removes the
same unit from both directions.

Attention heads use torch-pruning's head pruning (``num_heads``, ``prune_num_heads``), which
needs separate query/key/value ``nn.Linear`` layers. Attention is recognised by its structure
(:mod:`slimnas.models._heads`: three projections and a head count), so Hugging Face's BERT,
DistilBERT, ViT and GPT-2 and :class:`slimnas.models.SelfAttention` are found whatever their
layers are called; an ``nn.MultiheadAttention`` is first replaced by the equivalent
:class:`slimnas.models.SplitMultiheadAttention`, GPT-2's ``Conv1D`` layers by ``nn.Linear``
and its fused query/key/value layer by three. In a model with attention the embedding width
(the residual stream every block adds to, held by LayerNorms and embeddings) is kept: heads and
MLP neurons are what is pruned.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

from slimnas.errors import SlimnasError
from slimnas.models._attention import SplitMultiheadAttention
from slimnas.models._heads import needs_separating, separate_projections

GATES = {"GRU": 3, "LSTM": 4}


def _rnn_params(layer: nn.RNNBase) -> list[tuple[int, str]]:
    """``(layer index, direction suffix)`` of every parameter set of a recurrent layer."""
    suffixes = ("", "_reverse") if layer.bidirectional else ("",)
    return [(k, sfx) for k in range(layer.num_layers) for sfx in suffixes]


class RNNHiddenPruningFunc(tp.pruner.function.BasePruningFunc):
    """Removes hidden units of a GRU or LSTM, of any depth and direction: unit ``i`` goes from
    every layer and direction (all its gates' rows, its recurrent columns, and the next layer's
    input columns)."""

    def _gates(self, layer: nn.RNNBase) -> int:
        return GATES[layer.mode]

    def prune_out_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        hidden = layer.hidden_size
        drop = {int(i) % hidden for i in idxs}  # a bidirectional output holds each unit twice
        keep = torch.tensor(sorted(set(range(hidden)) - drop), dtype=torch.long)
        rows = torch.cat([keep + g * hidden for g in range(self._gates(layer))])
        dirs = 2 if layer.bidirectional else 1
        inner = torch.cat([keep + d * hidden for d in range(dirs)])  # next layer's input columns
        for k, sfx in _rnn_params(layer):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                name = f"{kind}_l{k}{sfx}"
                p = getattr(layer, name, None)
                if p is None:
                    continue
                data = p.data[rows]
                if kind == "weight_hh":
                    data = data[:, keep]
                elif kind == "weight_ih" and k > 0:
                    data = data[:, inner]
                setattr(layer, name, nn.Parameter(data.clone(), requires_grad=p.requires_grad))
        layer.hidden_size = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        keep = sorted(set(range(layer.input_size)) - {int(i) for i in idxs})
        for sfx in ("", "_reverse") if layer.bidirectional else ("",):
            p = getattr(layer, f"weight_ih_l0{sfx}")
            setattr(layer, f"weight_ih_l0{sfx}", nn.Parameter(p.data[:, keep].clone(), requires_grad=p.requires_grad))
        layer.input_size = len(keep)
        return layer

    def get_out_channels(self, layer: nn.RNNBase) -> int:
        return layer.hidden_size * (2 if layer.bidirectional else 1)

    def get_in_channels(self, layer: nn.RNNBase) -> int:
        return layer.input_size

    def get_out_channel_groups(self, layer: nn.RNNBase) -> int:
        return 2 if layer.bidirectional else 1


class FixedRNNPruningFunc(RNNHiddenPruningFunc):
    """Lets the dependency graph trace a recurrent layer it must leave alone (an LSTM with
    projections): reports its true widths and refuses to change it."""

    def prune_out_channels(self, layer, idxs):
        raise SlimnasError(f"cannot prune the hidden units of {layer}")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer):
        return (getattr(layer, "proj_size", 0) or layer.hidden_size) * (2 if layer.bidirectional else 1)


def rnn_unsupported_reason(layer: nn.Module) -> str | None:
    """Why a recurrent layer is left alone, or ``None`` if its hidden units can be pruned."""
    if not isinstance(layer, nn.RNNBase):
        return None
    if layer.mode not in GATES:
        return f"{layer.mode} cells are not supported"
    if getattr(layer, "proj_size", 0):
        return "LSTM layers with projections (proj_size) are not supported"
    return None


def rnn_unit_rows(layer: nn.RNNBase, idxs: Sequence[int]) -> torch.Tensor:
    """The gate rows of hidden units ``idxs`` (taken modulo the hidden size)."""
    idx = torch.tensor(sorted({int(i) % layer.hidden_size for i in idxs}), dtype=torch.long)
    return torch.cat([idx + g * layer.hidden_size for g in range(GATES[layer.mode])])


@torch.no_grad()
def mask_rnn_units(layer: nn.RNNBase, idxs: Sequence[int]) -> None:
    """Zero the gate rows of hidden units ``idxs`` in every layer and direction: a GRU unit
    with all-zero gates keeps ``h = z * h_prev = 0`` from ``h0 = 0``, an LSTM unit keeps
    ``c = f * c_prev = 0`` and so ``h = 0``; either way the unit feeds nothing on."""
    rows = rnn_unit_rows(layer, idxs)
    for k, sfx in _rnn_params(layer):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = getattr(layer, f"{kind}_l{k}{sfx}", None)
            if p is not None:
                p[rows] = 0


# --- attention ----------------------------------------------------------------------------


def split_attention(model: nn.Module) -> dict[str, str]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` (in place) by the equivalent
    :class:`SplitMultiheadAttention`, Hugging Face ``Conv1D`` layers by ``nn.Linear`` and fused
    query/key/value layers by three (:func:`slimnas.models._heads.separate_projections`);
    returns the attention modules left as they were, with why."""
    separate_projections(model)
    left: dict[str, str] = {}
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.TransformerEncoder):
            m.use_nested_tensor = False  # its fused path needs the packed projection
        if not isinstance(m, nn.MultiheadAttention):
            continue
        why = SplitMultiheadAttention.unsupported(m)
        if why:
            left[name] = why
            continue
        model.set_submodule(name, SplitMultiheadAttention.from_mha(m))
    return left


def head_ratio(ratio: float, heads: int) -> float:
    """torch-pruning's head ratio that removes as many heads as ``ratio`` removes channels
    (``heads - int(heads * (1 - ratio))``, keeping one); it rounds ``ratio * heads`` up."""
    n = min(heads - 1, heads - int(heads * (1 - ratio))) if ratio > 0 else 0
    return 0.0 if n <= 0 else (n - 0.01) / heads


def attention_heads(model: nn.Module) -> dict[str, int]:
    """Each attention's head count, keyed by the name pruning takes its ratio under (its query
    projection in :func:`split_view`, as :func:`~slimnas.compress.list_prunable_layers` names it)."""
    from slimnas.models._heads import attention_blocks

    view = split_view(model)
    names = {m: n for n, m in view.named_modules()}
    return {names[b.query]: b.heads for b in attention_blocks(view)}


def residual_modules(model: nn.Module) -> list[nn.Module]:
    """What holds a Transformer's embedding width: its LayerNorms and embedding tables, and
    layers that share an embedding table's weights (a language model's tied output layer)."""
    held = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.Embedding))]
    return held + tied_to_embeddings(model)


def tied_to_embeddings(model: nn.Module) -> list[nn.Module]:
    """Layers other than embeddings whose weight is an embedding table's (tied weights)."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [m for m in model.modules() if not isinstance(m, nn.Embedding)
            and isinstance(getattr(m, "weight", None), torch.Tensor) and id(m.weight) in tables]


def _stand_in_forward(self: nn.RNNBase, input, hx=None):
    """What a recurrent layer looks like to torch-pruning's tracer: outputs of the layer's
    shapes computed by one matrix product from its input (the real recurrence unrolls into
    hundreds of autograd nodes, slow to walk, and CPU's bidirectional LSTM into concatenations
    the tracer cannot size). ``h_n`` (and ``c_n``) follow from the output's last step."""
    x = input if self.batch_first else input.transpose(0, 1)
    dirs = 2 if self.bidirectional else 1
    width = getattr(self, "proj_size", 0) or self.hidden_size
    w = torch.cat([getattr(self, f"weight_ih_l0{sfx}")[:width]
                   for sfx in (("", "_reverse") if self.bidirectional else ("",))])
    out = torch.nn.functional.linear(x, w)
    n = out.shape[0]
    h = out[:, -1].reshape(n, dirs, width).transpose(0, 1).repeat(self.num_layers, 1, 1)
    if not self.batch_first:
        out = out.transpose(0, 1)
    return out, ((h, h) if self.mode == "LSTM" else h)


class tracing_stand_ins:
    """Context manager: recurrent layers of ``model`` use :func:`_stand_in_forward` inside, and
    Hugging Face models keep no key/value cache (``config.use_cache``: GPT-2's cache joins
    tensors the tracer cannot size)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, (nn.GRU, nn.LSTM))]
        configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None}
        self.configs = [c for c in configs.values() if getattr(c, "use_cache", None) is True]

    def __enter__(self):
        for m in self.layers:
            m.forward = _stand_in_forward.__get__(m)
        for c in self.configs:
            c.use_cache = False
        return self

    def __exit__(self, *exc) -> None:
        for m in self.layers:
            del m.forward
        for c in self.configs:
            c.use_cache = True


def split_view(model: nn.Module) -> nn.Module:
    """``model`` as structured pruning sees it: a copy with every ``nn.MultiheadAttention`` and
    fused query/key/value layer split into separate projections and Hugging Face ``Conv1D``
    layers made ``nn.Linear`` (:func:`split_attention`; the model itself when it has none of
    them), so layer names match what pruning reports and takes ratios for."""
    if not any(isinstance(m, nn.MultiheadAttention) for m in model.modules()) and not needs_separating(model):
        return model
    import copy

    view = copy.deepcopy(model)
    split_attention(view)
    return view
