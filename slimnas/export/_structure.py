"""Save a compressed model as a state dict plus the structure needed to rebuild it.

Pruning changes layer widths and low-rank factorisation swaps layers for small chains, so the
original builder no longer fits the weights. ``structure.json`` records, for every layer that
holds weights, its type and constructor arguments; :func:`load_compressed` rebuilds those
layers inside a freshly built original model and loads ``weights.pt`` with ``weights_only=True``.
For attention modules whose heads were pruned it also records the module's own head count and
width attributes (``heads``: ``num_attention_heads``, ``all_head_size``, GPT-2's ``num_heads``
and ``split_size``, ...), set again after loading so the rebuilt module states the heads it has.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from slimnas._files import atomic_path, atomic_write, load_weights, read_json
from slimnas.errors import DamagedFileError, SlimnasError
from slimnas.models._attention import FusedProjection, SplitMultiheadAttention
from slimnas.models._heads import attention_blocks, head_attributes
from slimnas.models._layers import LowRank

_CONVS = {"Conv1d": nn.Conv1d, "Conv2d": nn.Conv2d, "Conv3d": nn.Conv3d}
_BNS = {"BatchNorm1d": nn.BatchNorm1d, "BatchNorm2d": nn.BatchNorm2d, "BatchNorm3d": nn.BatchNorm3d}
_RNNS = {"GRU": nn.GRU, "LSTM": nn.LSTM}


def describe(module: nn.Module) -> dict | None:
    """Type and constructor arguments of a layer whose shape compression may change."""
    t = type(module).__name__
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features,
                "bias": module.bias is not None}
    if t in _CONVS and type(module) is _CONVS[t]:
        return {"type": t, "in_channels": module.in_channels, "out_channels": module.out_channels,
                "kernel_size": list(module.kernel_size), "stride": list(module.stride),
                "padding": module.padding if isinstance(module.padding, str) else list(module.padding),
                "dilation": list(module.dilation), "groups": module.groups, "bias": module.bias is not None,
                "padding_mode": module.padding_mode}
    if t in _BNS and type(module) is _BNS[t]:
        return {"type": t, "num_features": module.num_features, "eps": module.eps, "momentum": module.momentum,
                "affine": module.affine, "track_running_stats": module.track_running_stats}
    if t in _RNNS and type(module) is _RNNS[t]:
        return {"type": t, "input_size": module.input_size, "hidden_size": module.hidden_size,
                "num_layers": module.num_layers, "bias": module.bias, "batch_first": module.batch_first,
                "bidirectional": module.bidirectional}
    if type(module) is nn.Embedding:  # its width follows the layers it feeds when they are pruned
        return {"type": "Embedding", "num_embeddings": module.num_embeddings, "embedding_dim": module.embedding_dim,
                "padding_idx": module.padding_idx}
    if isinstance(module, LowRank):
        return {"type": "LowRank", "n_factors": len(module)}
    if isinstance(module, FusedProjection):  # a fused query/key/value layer, split to prune heads
        return {"type": "FusedProjection"}
    if isinstance(module, SplitMultiheadAttention):  # nn.MultiheadAttention, split to prune heads
        return {"type": "SplitMultiheadAttention", "embed_dim": module.embed_dim, "head_dim": module.head_dim,
                "inner": module.query.out_features, "kdim": module.key.in_features, "vdim": module.value.in_features,
                "bias": module.query.bias is not None, "batch_first": module.batch_first, "dropout": module.dropout}
    return None


def build(desc: dict) -> nn.Module:
    desc = dict(desc)
    t = desc.pop("type")
    if t == "Linear":
        return nn.Linear(**desc)
    if t in _CONVS:
        return _CONVS[t](**desc)
    if t in _BNS:
        return _BNS[t](**desc)
    if t in _RNNS:
        return _RNNS[t](**desc)
    if t == "Embedding":
        return nn.Embedding(**desc)
    if t == "LowRank":
        return LowRank(*[nn.Identity() for _ in range(desc["n_factors"])])
    if t == "SplitMultiheadAttention":
        return SplitMultiheadAttention(**desc)
    if t == "FusedProjection":
        return FusedProjection(nn.Identity(), nn.Identity(), nn.Identity())
    raise SlimnasError(f"structure.json names an unknown layer type {t!r}")


def structure(model: nn.Module) -> dict[str, dict]:
    """Module name -> description, for every layer :func:`describe` knows (parents first)."""
    out = {}
    for name, module in model.named_modules():
        desc = describe(module)
        if desc is not None and name:
            out[name] = desc
    return out


def heads(model: nn.Module) -> dict[str, dict[str, int]]:
    """Attention module name -> its own head count and width attributes (where it has some)."""
    names = {m: n for n, m in model.named_modules()}
    out = {}
    for block in attention_blocks(model):
        attrs = head_attributes(block.module)
        if attrs:
            out[names[block.module]] = attrs
    return out


def save_compressed(model: nn.Module, folder: str | Path) -> Path:
    """Write ``weights.pt`` (state dict) and ``structure.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "weights.pt") as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    saved = {"version": 1, "layers": structure(model), "heads": heads(model)}
    atomic_write(folder / "structure.json", json.dumps(saved, indent=1))
    return folder


def load_compressed(model: nn.Module, folder: str | Path) -> nn.Module:
    """Reshape ``model`` (a fresh build of the original architecture) to the saved structure and
    load the saved weights into it; returns the model, in eval mode.

    Example:
        >>> from slimnas.compress import StructuredPruner
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> pruned = StructuredPruner(ratio=0.5).fit(mnist1d_paper_cnn(), input_shape=(1, 40)).model_
        >>> _ = save_compressed(pruned, "/tmp/pruned")
        >>> load_compressed(mnist1d_paper_cnn(), "/tmp/pruned")[0].out_channels
        12
    """
    folder = Path(folder)
    saved = read_json(folder / "structure.json", "a JSON object of the compressed layers ({\"layers\": {...}})",
                      lambda d: all(isinstance(v, dict) for v in d["layers"].values()))
    layers = saved["layers"]
    for name in sorted(layers, key=lambda n: n.count(".")):
        try:
            model.set_submodule(name, build(layers[name]))
        except AttributeError as e:
            raise SlimnasError(f"{folder}: layer {name!r} does not fit the given model ({e})") from None
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedFileError(folder / "structure.json", f"layer {name!r} cannot be built "
                                   f"({type(e).__name__}: {e})", "the compressed layers' types and sizes") from None
    state = load_weights(folder / "weights.pt")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SlimnasError(f"{folder}: the weights do not fit the rebuilt model: {str(e).splitlines()[0]}") from None
    _set_heads(model, saved.get("heads") or {}, folder)
    return model.eval()


def _set_heads(model: nn.Module, saved: dict, folder: Path) -> None:
    """Set the head count and width attributes ``structure.json`` records for each attention."""
    for name, attrs in saved.items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise SlimnasError(f"{folder}: structure.json names an attention module {name!r} the model does not "
                               "have") from None
        have = head_attributes(module)
        for attr, value in attrs.items():
            if attr not in have or isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SlimnasError(f"{folder}: structure.json sets {name}.{attr} to {value!r}; expected a positive "
                                   f"integer for one of its attributes {sorted(have)}")
            setattr(module, attr, value)
