"""The continuous relaxation DARTS searches (Liu, Simonyan & Yang 2019, "DARTS: Differentiable
Architecture Search", ICLR): every choice of the CNN family becomes a softmax over its options,
and one supernet computes the mixture of all the networks of the space at once.

The CNN family is a chain of conv blocks (conv -> BN -> + skip -> activation -> pool), so the
mixed operations are those of a chain:

- kernel size: one kernel of the largest size whose centred sub-kernels are the smaller ones,
  weighted by the kernel softmax (the single-path "superkernel" of Stamoulis et al. 2019);
- width: the block computes the widest choice and multiplies its output by a mixture of channel
  masks, ``sum_c p_c [j < c]`` (FBNetV2, Wan et al. 2020);
- depth: the layers past the shallowest allowed depth mix the block with ``skip`` (identity,
  the layer removed);
- the residual edge around each block is DARTS's ``zero`` / ``skip`` pair (no shortcut, or the
  family's identity or 1x1 projection shortcut);
- stride and pooling change the resolution, and a weighted sum can only mix maps of one shape.
  The supernet keeps, after each layer, one feature map per spatial shape a path can reach,
  weighted by the probability of reaching it: a stride-``s`` conv is the stride-1 conv read
  every ``s``-th position, so one conv per map serves every stride, and paths that arrive at the
  same shape are mixed. The head reads each map (a ``flatten`` head has a classifier per shape).
- activation, head (``gap`` / ``flatten``) and dilation are softmax mixtures too.

Token ids (``vocab_size``, text data) are embedded as wide as the widest layer, the embedding's
columns masked by the first layer's width mixture (the CNN family embeds into its first layer's
width). A per-token head (``per_token``, a per-token task) fixes stride 1, no pooling and the
``gap`` head (the family's per-token CNN has them) and classifies every position; a ``causal``
one pads every convolution on the left only, a smaller kernel being the largest one's last taps
(so a position reads itself and the earlier ones, as the family's causal convolutions do).

At one-hot weights the supernet computes the discrete network the weights select (checked
against the family's own builder with inherited weights), and :meth:`DartsSupernet.expected_macs`
is its exact MAC count; under soft weights it is the MACs expected under the softmax
(independent choices), which the architecture loss may penalise. Batch norm and dropout are not
searched (batch norm is used when the space allows it, dropout takes its smallest value).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimnas.models import CNNSpec, ConvLayer
from slimnas.models._layers import make_activation
from slimnas.models._tokens import check_id_inputs, check_per_token, embed_ids

#: a numeric range of the space becomes at most this many options of the relaxation
MAX_OPTIONS = 8
#: the per-layer choices and the network-wide ones
LAYER_CHOICES = ("kernel", "channels", "stride", "dilation", "pool")
GLOBAL_CHOICES = ("activation", "residual", "head")


def param_options(param, limit: int = MAX_OPTIONS) -> tuple:
    """The options a space parameter offers (a numeric range: up to ``limit`` points of it)."""
    if param.values is not None:
        return tuple(param.values)
    low, high = param.low, param.high
    if param.integer:
        step = int(param.step or 1)
        points = list(range(int(low), int(high) + 1, step))
        if len(points) <= limit:
            return tuple(points)
        if param.log:
            raw = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (limit - 1)) for i in range(limit)]
        else:
            raw = [low + (high - low) * i / (limit - 1) for i in range(limit)]
        return tuple(sorted({min(points, key=lambda p, r=r: abs(p - r)) for r in raw}))
    return (low,)  # a float range (dropout): its smallest value


@dataclass(frozen=True)
class CnnChoices:
    """The CNN family's options, as the relaxation sees them."""

    depths: tuple[int, ...]
    kernel: tuple[int, ...]
    channels: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pool: tuple[str, ...]
    activation: tuple[str, ...]
    residual: tuple[bool, ...]
    head: tuple[str, ...]
    batch_norm: bool = True
    dropout: float = 0.0

    @classmethod
    def from_params(cls, params: dict) -> CnnChoices:
        """From the CNN family's parameters of a :class:`slimnas.spaces.SearchSpace`."""
        opt = {k: param_options(p) for k, p in params.items()}
        kernels = tuple(sorted(opt["kernel"]))
        return cls(depths=tuple(sorted(opt["n_layers"])), kernel=kernels, channels=tuple(sorted(opt["channels"])),
                   stride=tuple(sorted(opt["stride"])), dilation=tuple(sorted(opt["dilation"])),
                   pool=tuple(opt["pool"]), activation=tuple(opt["activation"]),
                   residual=tuple(sorted(opt["residual"])), head=tuple(opt["head"]),
                   batch_norm=True in opt["batch_norm"], dropout=float(min(opt["dropout"])))

    @property
    def n_max(self) -> int:
        return max(self.depths)

    @property
    def n_min(self) -> int:
        return min(self.depths)


Shape = tuple[int, ...]


def _strided(shape: Shape, stride: int) -> Shape:
    return tuple((n - 1) // stride + 1 for n in shape)


def _pooled(shape: Shape, kind: str) -> Shape:
    """The family pools (2-wide) only where at least 2 positions are left."""
    return shape if kind == "none" or min(shape) < 2 else tuple(n // 2 for n in shape)


def _subsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    if stride == 1:
        return x
    return x[(slice(None), slice(None), *[slice(None, None, stride)] * (x.dim() - 2))]


class DartsSupernet(nn.Module):
    """All the CNNs of ``choices`` in one network, mixed by architecture weights (``alphas``).

    Args:
        choices: the options of every choice.
        input_shape: one sample's shape, ``(C, L)`` or ``(C, H, W)``.
        n_classes: outputs.
        vocab_size: > 0: the inputs are token ids below it, ``(1, L)``, embedded.
        per_token: ``tokens`` / ``causal``: one prediction per position (stride 1, unpooled).

    Example:
        >>> net = DartsSupernet(CnnChoices(depths=(1, 2), kernel=(3, 5), channels=(4, 8), stride=(1, 2),
        ...                                dilation=(1,), pool=("none",), activation=("relu",),
        ...                                residual=(False,), head=("gap",)), (1, 16), 3)
        >>> net(torch.zeros(2, 1, 16)).shape
        torch.Size([2, 3])
    """

    def __init__(self, choices: CnnChoices, input_shape: tuple[int, ...], n_classes: int, *, vocab_size: int = 0,
                 per_token: str = "") -> None:
        super().__init__()
        self.per_token, self.vocab_size = check_per_token(per_token, "cnn"), vocab_size
        if per_token:  # the family's per-token CNN: stride 1, unpooled, its head's key unused
            choices = dataclasses.replace(choices, stride=(1,), pool=("none",), head=("gap",))
        self.choices, self.input_shape, self.n_classes = choices, tuple(input_shape), n_classes
        c = choices
        width, k = max(c.channels), max(c.kernel)
        self.width = width
        self.embed: nn.Embedding | None = None
        shape = self.input_shape
        if vocab_size > 0:  # token ids -> (N, width, L), masked to the first layer's width
            shape = (width, check_id_inputs(shape, vocab_size, "cnn"))
            self.embed = nn.Embedding(vocab_size, width)
        self.ndim = len(shape) - 1
        if self.ndim not in (1, 2) or (per_token and self.ndim != 1):
            raise ValueError(f"the CNN relaxation takes inputs shaped (C, L) or (C, H, W) (a per-token one (C, L)), "
                             f"got {input_shape}")
        self.spatial: Shape = tuple(shape[1:])
        conv = nn.Conv1d if self.ndim == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if self.ndim == 1 else nn.BatchNorm2d
        self.convs, self.bns, self.projs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        in_ch = shape[0]
        for _ in range(c.n_max):
            self.convs.append(conv(in_ch, width, k, bias=not c.batch_norm))
            self.bns.append(bn(width) if c.batch_norm else nn.Identity())
            if True in c.residual:
                proj: list[nn.Module] = [conv(in_ch, width, 1, bias=not c.batch_norm)]
                if c.batch_norm:
                    proj.append(bn(width))
                self.projs.append(nn.Sequential(*proj))
            in_ch = width
        self.acts = nn.ModuleList(make_activation(a) for a in c.activation)
        self.gap_head = nn.Linear(width, n_classes) if "gap" in c.head else None
        self.flat_heads = nn.ModuleDict()
        if "flatten" in c.head:
            for shape in self.reachable_shapes():
                self.flat_heads[self._key(shape)] = nn.Linear(width * math.prod(shape), n_classes)
        # kernel masks: the centred k-wide part of the largest kernel
        masks = torch.zeros(len(c.kernel), *[k] * self.ndim)
        for i, kk in enumerate(c.kernel):
            lo = self._kernel_start(kk)
            masks[(i, *[slice(lo, lo + kk)] * self.ndim)] = 1.0
        self.register_buffer("kernel_masks", masks, persistent=False)
        cmask = torch.tensor([[1.0 if j < w else 0.0 for j in range(width)] for w in c.channels])
        self.register_buffer("channel_masks", cmask, persistent=False)
        self.alphas = nn.ParameterDict()
        for i in range(c.n_max):
            for name in LAYER_CHOICES:
                if len(getattr(c, name)) > 1:
                    self.alphas[f"{name}_{i}"] = nn.Parameter(torch.zeros(len(getattr(c, name))))
            if i >= c.n_min:
                self.alphas[f"depth_{i}"] = nn.Parameter(torch.zeros(2))  # [block, skip]
        for name in GLOBAL_CHOICES:
            if len(getattr(c, name)) > 1:
                self.alphas[name] = nn.Parameter(torch.zeros(len(getattr(c, name))))

    def _kernel_start(self, kernel: int) -> int:
        """Where a ``kernel``-wide kernel starts in the largest one: centred, or (causal) its
        last taps, those that read the latest positions."""
        k = max(self.choices.kernel)
        return k - kernel if self.per_token == "causal" else (k - kernel) // 2

    def _input_widths(self, zero: torch.Tensor) -> dict[int, torch.Tensor]:
        """The distribution of the first layer's input width: the input's channels, or the
        embedding's width (the first layer's own)."""
        if self.embed is None:
            return {self.input_shape[0]: zero + 1.0}
        return {w: p for w, p in zip(self.choices.channels, self.probs("channels", 0), strict=True)}

    @staticmethod
    def _key(shape: Shape) -> str:
        return "x".join(map(str, shape))

    def reachable_shapes(self) -> list[Shape]:
        """Every spatial shape the last layer of a network of the space can output."""
        c, shapes, out = self.choices, {self.spatial}, set()
        for i in range(c.n_max):
            nxt = set()
            for shape in shapes:
                for st in c.stride:
                    for kind in c.pool:
                        nxt.add(_pooled(_strided(shape, st), kind))
            shapes = nxt | (shapes if i >= c.n_min else set())
            if i + 1 >= c.n_min:
                out |= shapes
        return sorted(out, reverse=True)

    # --- architecture weights -----------------------------------------------------------------

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def probs(self, name: str, layer: int | None = None) -> torch.Tensor:
        """The softmax weights of one choice (``[1.0]`` when it has one option)."""
        key = name if layer is None else f"{name}_{layer}"
        if key in self.alphas:
            return F.softmax(self.alphas[key], dim=0)
        device = self.channel_masks.device
        if name == "depth":  # a layer every allowed depth has
            return torch.tensor([1.0, 0.0], device=device)
        return torch.ones(len(getattr(self.choices, name)), device=device)

    def load_probs(self, probs: dict[str, list[float]]) -> None:
        """Set the architecture weights to the logarithms of ``probs`` (softmax weights by key)."""
        with torch.no_grad():
            for key, alpha in self.alphas.items():
                alpha.copy_(torch.log(torch.tensor(probs[key], dtype=alpha.dtype).clamp_min(1e-12)))

    def set_one_hot(self, selection: dict[str, int], value: float = 1e4) -> None:
        """Set every choice's weights to (numerically) one-hot on ``selection[key]`` (an index)."""
        with torch.no_grad():
            for key, alpha in self.alphas.items():
                alpha.zero_()
                alpha[selection.get(key, 0)] = value

    # --- forward --------------------------------------------------------------------------------

    def _conv(self, i: int, h: torch.Tensor) -> torch.Tensor:
        c = self.choices
        pk = self.probs("kernel", i)
        weight = self.convs[i].weight * torch.einsum("k,k...->...", pk, self.kernel_masks)
        bias = self.convs[i].bias
        k = max(c.kernel)
        out = 0.0
        fn = F.conv1d if self.ndim == 1 else F.conv2d
        for pd, d in zip(self.probs("dilation", i), c.dilation, strict=True):
            if self.per_token == "causal":  # all the padding on the left
                out = out + pd * fn(F.pad(h, (d * (k - 1), 0)), weight, bias, dilation=d)
            else:
                out = out + pd * fn(h, weight, bias, padding=d * (k - 1) // 2, dilation=d)
        return self.bns[i](out)

    def _pool(self, y: torch.Tensor, kind: str) -> torch.Tensor:
        if min(y.shape[2:]) < 2:
            return y
        if kind == "max":
            return (F.max_pool1d if self.ndim == 1 else F.max_pool2d)(y, 2)
        return (F.avg_pool1d if self.ndim == 1 else F.avg_pool2d)(y, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.choices
        zero = torch.zeros((), device=x.device)
        if self.embed is not None:  # the ids' vectors, as wide as the first layer's width mixture
            p_w = self.probs("channels", 0)
            mask = (p_w[:, None] * self.channel_masks).sum(0).view(1, -1, 1)
            x = embed_ids(self.embed, x).transpose(1, 2) * mask
        states: dict[Shape, torch.Tensor] = {self.spatial: x}
        mass: dict[Shape, torch.Tensor] = {self.spatial: zero + 1.0}
        in_dist = self._input_widths(zero)  # the input's width, as a distribution
        p_res = self.probs("residual")[c.residual.index(True)] if True in c.residual else None
        p_act = self.probs("activation")
        for i in range(c.n_max):
            p_depth = self.probs("depth", i)
            p_w = self.probs("channels", i)
            mask = (p_w[:, None] * self.channel_masks).sum(0).view(1, -1, *[1] * self.ndim)
            same = sum((in_dist.get(w, 0.0) * p for w, p in zip(c.channels, p_w, strict=True)), zero)
            if i == 0 and self.embed is not None:  # the embedding is as wide as the first layer
                same = zero + 1.0
            incoming: dict[Shape, list] = defaultdict(list)
            for shape, h in states.items():
                if p_depth[1] > 0:
                    incoming[shape].append((mass[shape] * p_depth[1], h))
                main = self._conv(i, h)
                proj = self.projs[i](h) if p_res is not None else None
                for p_st, st in zip(self.probs("stride", i), c.stride, strict=True):
                    y = main
                    if proj is not None:
                        sc = proj
                        if st == 1:  # the family's identity shortcut where the widths match
                            ident = h if h.shape[1] == self.width else F.pad(
                                h, [0, 0] * self.ndim + [0, self.width - h.shape[1]])
                            sc = same * ident + (1 - same) * proj
                        y = y + p_res * sc
                    y = _subsample(y, st)  # a stride-st conv is the stride-1 conv every st-th position
                    y = sum(pa * act(y) for pa, act in zip(p_act, self.acts, strict=True)) * mask
                    for p_pool, kind in zip(self.probs("pool", i), c.pool, strict=True):
                        z = y if kind == "none" else self._pool(y, kind)
                        incoming[tuple(z.shape[2:])].append((mass[shape] * p_depth[0] * p_st * p_pool, z))
            states, mass = {}, {}
            for shape, parts in incoming.items():
                total = sum(w for w, _ in parts)
                mass[shape] = total
                states[shape] = sum(w * z for w, z in parts) / total.clamp_min(1e-12)
            in_dist = self._next_widths(in_dist, p_depth, p_w, zero)
        return self._head(states, mass)

    def _next_widths(self, in_dist: dict[int, torch.Tensor], p_depth: torch.Tensor, p_w: torch.Tensor,
                     zero: torch.Tensor) -> dict[int, torch.Tensor]:
        """The distribution of the width out of a layer: the width in where the layer is skipped
        (``p_depth[1]``), each of its widths by ``p_w`` where it is kept (``p_depth[0]``)."""
        new_dist: dict[int, torch.Tensor] = defaultdict(lambda: zero)
        for w, p in in_dist.items():
            new_dist[w] = new_dist[w] + p_depth[1] * p
        for w, p in zip(self.choices.channels, p_w, strict=True):
            new_dist[w] = new_dist[w] + p_depth[0] * p
        return dict(new_dist)

    def _head(self, states: dict[Shape, torch.Tensor], mass: dict[Shape, torch.Tensor]) -> torch.Tensor:
        c = self.choices
        p_head = self.probs("head")
        out = 0.0
        for shape, h in states.items():
            if self.per_token:  # (N, L, outputs): every position's features classified
                out = out + mass[shape] * self.gap_head(h.transpose(1, 2))
                continue
            logits = 0.0
            for p, kind in zip(p_head, c.head, strict=True):
                if kind == "gap":
                    logits = logits + p * self.gap_head(h.flatten(2).mean(2))
                else:
                    logits = logits + p * self.flat_heads[self._key(shape)](h.flatten(1))
            out = out + mass[shape] * logits
        return out

    # --- expected cost ----------------------------------------------------------------------------

    def expected_macs(self) -> torch.Tensor:
        """MACs of one sample expected under the softmax weights (choices independent);
        exactly the discrete network's MACs at one-hot weights (convolutions and linear
        layers, as :func:`slimnas.measure.count_macs` counts)."""
        c = self.choices
        dev = self.channel_masks.device
        zero = torch.zeros((), device=dev)
        widths = torch.tensor(c.channels, dtype=torch.float32, device=dev)
        k_area = torch.tensor([k**self.ndim for k in c.kernel], dtype=torch.float32, device=dev)
        mass: dict[Shape, torch.Tensor] = {self.spatial: zero + 1.0}
        in_dist = self._input_widths(zero)
        p_res = self.probs("residual")[c.residual.index(True)] if True in c.residual else zero
        total = zero
        for i in range(c.n_max):
            p_depth, p_w = self.probs("depth", i), self.probs("channels", i)
            e_in = sum(p * w for w, p in in_dist.items())
            e_out = (p_w * widths).sum()
            e_k = (self.probs("kernel", i) * k_area).sum()
            # E[c_in c_out] over pairs of equal widths: those take the identity shortcut at stride 1
            e_same = sum((in_dist.get(w, 0.0) * p * w * w for w, p in zip(c.channels, p_w, strict=True)), zero)
            if i == 0 and self.embed is not None:  # the embedding is the first layer's width: E[c^2] both
                e_same = (p_w * widths**2).sum()
                e_in_out = e_same
            else:
                e_in_out = e_in * e_out
            new_mass: dict[Shape, torch.Tensor] = defaultdict(lambda: zero)
            for shape, m in mass.items():
                new_mass[shape] = new_mass[shape] + m * p_depth[1]
                for p_st, st in zip(self.probs("stride", i), c.stride, strict=True):
                    out_shape = _strided(shape, st)
                    pos = math.prod(out_shape)
                    w = m * p_depth[0] * p_st
                    total = total + w * pos * e_in_out * e_k
                    total = total + w * p_res * pos * (e_in_out - (e_same if st == 1 else 0.0))
                    for p_pool, kind in zip(self.probs("pool", i), c.pool, strict=True):
                        key = _pooled(out_shape, kind)
                        new_mass[key] = new_mass[key] + w * p_pool
            mass = dict(new_mass)
            in_dist = self._next_widths(in_dist, p_depth, p_w, zero)
        e_last = sum(p * w for w, p in in_dist.items())
        for shape, m in mass.items():
            for p, kind in zip(self.probs("head"), c.head, strict=True):
                # per token: the classifier at every position
                features = e_last if kind == "gap" and not self.per_token else e_last * math.prod(shape)
                total = total + m * p * features * self.n_classes
        return total

    # --- discretisation -------------------------------------------------------------------------

    def selection(self) -> dict[str, int]:
        """The argmax of every choice (an index per alpha key)."""
        return {k: int(torch.argmax(a.detach())) for k, a in self.alphas.items()}

    def discretise(self, selection: dict[str, int] | None = None) -> tuple[CNNSpec, list[int]]:
        """The discrete network a selection (default: the argmax) picks, and which supernet
        layers its layers are: layers whose ``skip`` wins are dropped, and the depth is brought
        to the nearest allowed one by keeping the dropped layers that came closest (or dropping
        the kept ones that won by least)."""
        c, sel = self.choices, self.selection() if selection is None else selection
        kept = [i for i in range(c.n_max) if sel.get(f"depth_{i}", 0) == 0]
        target = min(c.depths, key=lambda n: (abs(n - len(kept)), -n))
        if len(kept) != target:
            margin = {i: float(F.softmax(self.alphas[f"depth_{i}"].detach(), 0)[0]) if f"depth_{i}" in self.alphas
                      else 2.0 for i in range(c.n_max)}
            if len(kept) < target:
                extra = sorted((i for i in range(c.n_max) if i not in kept), key=lambda i: -margin[i])
                kept = sorted(kept + extra[:target - len(kept)])
            else:
                drop = sorted(kept, key=lambda i: margin[i])[:len(kept) - target]
                kept = [i for i in kept if i not in drop]

        def pick(name: str, i: int | None = None) -> Any:
            key = name if i is None else f"{name}_{i}"
            return getattr(c, name)[sel.get(key, 0)]

        layers = tuple(ConvLayer(channels=pick("channels", i), kernel=pick("kernel", i), stride=pick("stride", i),
                                 dilation=pick("dilation", i), pool=pick("pool", i)) for i in kept)
        residual = pick("residual") if "residual" in self.alphas else c.residual[0]
        spec = CNNSpec(layers=layers, activation=pick("activation"), batch_norm=c.batch_norm, residual=residual,
                       head=pick("head"), dropout=c.dropout, vocab_size=self.vocab_size, per_token=self.per_token)
        return spec, kept

    @torch.no_grad()
    def inherit(self, model: nn.Module, spec: CNNSpec, layers: list[int]) -> nn.Module:
        """Copy the supernet's weights into ``model`` (the family's build of ``spec``, whose
        layer ``j`` is supernet layer ``layers[j]``): centred kernels (causal: the last taps),
        leading channels."""
        in_ch = self.input_shape[0]
        if self.embed is not None:  # the embedding's leading columns, the first layer's width
            in_ch = spec.layers[0].channels
            model.embed.weight.copy_(self.embed.weight[:, :in_ch])
        for j, (i, layer) in enumerate(zip(layers, spec.layers, strict=True)):
            block = model.features[j]
            lo = self._kernel_start(layer.kernel)
            w = self.convs[i].weight[(slice(0, layer.channels), slice(0, in_ch),
                                      *[slice(lo, lo + layer.kernel)] * self.ndim)]
            block.conv.weight.copy_(w)
            if block.conv.bias is not None:
                block.conv.bias.copy_(self.convs[i].bias[: layer.channels])
            if spec.batch_norm:
                _copy_bn(block.bn, self.bns[i], layer.channels)
            if isinstance(block.shortcut, nn.Sequential):
                src = self.projs[i]
                block.shortcut[0].weight.copy_(src[0].weight[: layer.channels, :in_ch])
                if block.shortcut[0].bias is not None:
                    block.shortcut[0].bias.copy_(src[0].bias[: layer.channels])
                if spec.batch_norm:
                    _copy_bn(block.shortcut[1], src[1], layer.channels)
            in_ch = layer.channels
        if spec.head == "gap" or self.per_token:
            model.classifier.weight.copy_(self.gap_head.weight[:, :in_ch])
            model.classifier.bias.copy_(self.gap_head.bias)
        else:
            shape = self.spatial
            for layer in spec.layers:
                shape = _pooled(_strided(shape, layer.stride), layer.pool)
            head = self.flat_heads[self._key(shape)]
            w = head.weight.view(self.n_classes, self.width, -1)[:, :in_ch].reshape(self.n_classes, -1)
            model.classifier.weight.copy_(w)
            model.classifier.bias.copy_(head.bias)
        return model


def _copy_bn(dst: nn.Module, src: nn.Module, n: int) -> None:
    dst.weight.copy_(src.weight[:n])
    dst.bias.copy_(src.bias[:n])
    dst.running_mean.copy_(src.running_mean[:n])
    dst.running_var.copy_(src.running_var[:n])
