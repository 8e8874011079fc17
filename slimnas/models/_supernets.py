"""Once-for-all supernets of the CNN and MLP families.

Elastic dimensions: depth (``n_layers``: a sub-network runs the first ``d`` layers), width
(``channels`` / ``width`` per layer: the first ``k`` channels or units) and, for CNNs, kernel size
(``kernel`` per layer: the centre of the largest). Every other gene of the space is fixed for
the supernet, its skeleton: a choice given in ``fixed`` (checked against the space), else, for
CNNs, strides that halve the sequence while it stays at least :data:`MIN_POSITIONS` long (the
first layer keeps the smallest stride), a global-average-pooling head and batch norm where the
space allows them, and otherwise the space's first choice. Each depth has its own classifier
(a shared one could not follow the channel order of every layer a sub-network may end at).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._cnn import CNNSpec, ConvLayer, ConvNet
from slimnas.models._elastic import (
    ELASTIC,
    BaseSupernet,
    ElasticBatchNorm,
    ElasticConv,
    ElasticLinear,
    fixed_layers,
    fixed_value,
    importance_order,
    one_hot,
    param_choices,
    permute_,
)
from slimnas.models._layers import conv_ndim, make_activation, pool_cls
from slimnas.models._mlp import MLP, MLPSpec
from slimnas.models._tokens import check_id_inputs, embed_ids
from slimnas.spaces import Param

#: default CNN skeleton: stride while the sequence (or the smaller image side) keeps this many positions
MIN_POSITIONS = 4
CNN_ELASTIC = ("n_layers", "channels", "kernel")
MLP_ELASTIC = ("n_layers", "width")


def _copy_bn(dst: nn.Module, src: ElasticBatchNorm, c: int) -> None:
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _permute_bn(bn: ElasticBatchNorm | None, perm: torch.Tensor) -> None:
    if bn is None:
        return
    for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        permute_(t, perm, 0)


def _check_fixed(fixed: dict, allowed: list[str], field: str) -> None:
    unknown = set(fixed) - set(allowed)
    if unknown:
        raise ConfigError(f"{field}.{sorted(unknown)[0]}", f"one of the supernet's fixed genes {sorted(allowed)} "
                          "(depth, width and kernel are elastic)")


class ElasticConvBlock(nn.Module):
    """conv -> (BN) -> (+ skip) -> activation -> (pool), every width and kernel at once; the skip
    is the identity where a sub-network keeps the width at stride 1, else a 1x1 projection (as
    :class:`~slimnas.models.ConvBlock`)."""

    def __init__(self, max_in: int, max_out: int, kernels: list[int], ndim: int, *, stride: int, dilation: int,
                 activation: str, batch_norm: bool, residual: bool, pool: str | None, transform: bool,
                 causal: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.conv = ElasticConv(max_in, max_out, kernels, ndim, stride=stride, dilation=dilation,
                                bias=not batch_norm, transform=transform, causal=causal)
        self.bn = ElasticBatchNorm(max_out) if batch_norm else None
        self.proj = ElasticConv(max_in, max_out, [1], ndim, stride=stride, bias=not batch_norm) if residual else None
        self.proj_bn = ElasticBatchNorm(max_out) if residual and batch_norm else None
        self.act = make_activation(activation)
        self.pool = pool_cls(pool, ndim)(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor, out_c: int, kernel: int) -> torch.Tensor:
        y = self.conv(x, out_c, kernel)
        if self.bn is not None:
            y = self.bn(y)
        if self.proj is not None:
            if x.shape[1] == out_c and self.stride == 1:
                y = y + x
            else:
                s = self.proj(x, out_c, 1)
                y = y + (self.proj_bn(s) if self.proj_bn is not None else s)
        return self.pool(self.act(y))


class DepthWidthKernel:
    """The choices, extremes and samples of a supernet whose sub-networks are a depth, a width
    and a kernel size per layer (or stage): ``depths``, ``widths``, ``kernels`` and
    ``compose(widths, kernels)`` (the spec of those choices) come from the supernet."""

    depths: Sequence[int]
    widths: Sequence[int]
    kernels: Sequence[int]

    @property
    def choices(self) -> dict[str, list]:
        return {"depth": list(self.depths), "width": list(self.widths), "kernel": list(self.kernels)}

    def largest(self) -> Any:
        n = max(self.depths)
        return self.compose([max(self.widths)] * n, [max(self.kernels)] * n)

    def smallest(self, dims: Sequence[str] = ELASTIC) -> Any:
        n = min(self.depths) if "depth" in dims else max(self.depths)
        w = min(self.widths) if "width" in dims else max(self.widths)
        k = min(self.kernels) if "kernel" in dims else max(self.kernels)
        return self.compose([w] * n, [k] * n)

    def sample(self, rng: np.random.Generator, dims: Sequence[str] = ELASTIC, depth: int | None = None) -> Any:
        n = _depth(self.depths, rng, dims, depth)
        widths = ([self.widths[int(i)] for i in rng.integers(len(self.widths), size=n)] if "width" in dims
                  else [max(self.widths)] * n)
        kernels = ([self.kernels[int(i)] for i in rng.integers(len(self.kernels), size=n)] if "kernel" in dims
                   else [max(self.kernels)] * n)
        return self.compose(widths, kernels)


class ElasticCNN(DepthWidthKernel, BaseSupernet):
    """Every sub-network of a CNN space: elastic depth, per-layer width and kernel size.

    Args:
        depths, widths, kernels: the values of the elastic dimensions.
        skeleton: a :class:`~slimnas.models.CNNSpec` of the largest depth whose strides,
            dilations, pooling, activation, batch norm, skips, head and dropout every
            sub-network shares (its widths and kernels are ignored).
        kernel_transform: OFA's learned transform from a kernel to the next smaller one.
        vocab_size: token-id inputs (``(1, L)``) looked up in an embedding as wide as the largest
            first layer (a sub-network reads its first ``channels_0`` columns, as
            :class:`~slimnas.models.ConvNet` embeds into its first layer's width); 0: values.
        per_token: ``tokens`` / ``causal`` (left-padded convolutions): one prediction per position
            (the skeleton's ``per_token``, at stride 1 and unpooled); "": one per sample.

    Example:
        >>> net = cnn_supernet({"n_layers": Param(values=(2, 3)), "channels": Param(values=(4, 8)),
        ...                     "kernel": Param(values=(3, 5))}, (1, 40), 10)  # doctest: +SKIP
        >>> spec = net.sample(np.random.default_rng(0))  # doctest: +SKIP
        >>> net.extract(spec)  # a ConvNet with the inherited weights  # doctest: +SKIP
    """

    family = "cnn"

    def __init__(self, *, depths: list[int], widths: list[int], kernels: list[int], skeleton: CNNSpec,
                 input_shape: tuple[int, ...], n_classes: int, kernel_transform: bool = False) -> None:
        super().__init__()
        self.depths, self.widths, self.kernels = sorted(depths), sorted(widths), sorted(kernels)
        self.skeleton, self.input_shape, self.n_classes = skeleton, tuple(input_shape), n_classes
        n, w = max(self.depths), max(self.widths)
        self.per_token = skeleton.per_token
        self.embed: nn.Embedding | None = None
        if skeleton.vocab_size > 0:  # token ids -> (N, the first layer's width, L)
            length = check_id_inputs(self.input_shape, skeleton.vocab_size, "cnn")
            self.embed = nn.Embedding(skeleton.vocab_size, w)
            input_shape = (w, length)
        ndim = conv_ndim(input_shape, "cnn")
        blocks, in_ch, size = [], input_shape[0], min(input_shape[1:])
        for layer in skeleton.layers[:n]:
            size = (size - 1) // layer.stride + 1
            pool = layer.pool != "none" and size >= 2  # as ConvNet decides it
            size = size // 2 if pool else size
            blocks.append(ElasticConvBlock(in_ch, w, self.kernels, ndim, stride=layer.stride, dilation=layer.dilation,
                                           activation=skeleton.activation, batch_norm=skeleton.batch_norm,
                                           residual=skeleton.residual, pool=layer.pool if pool else None,
                                           transform=kernel_transform, causal=self.per_token == "causal"))
            in_ch = w
        self.blocks = nn.ModuleList(blocks)
        gap = [nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)] if skeleton.head == "gap" else []
        self.pool = nn.Sequential(*gap, nn.Flatten())
        self.dropout = nn.Dropout(skeleton.dropout) if skeleton.dropout > 0 else nn.Identity()
        self.positions = self._positions()
        self.heads = nn.ModuleDict({str(d): ElasticLinear(w * self.positions[d], n_classes) for d in self.depths})

    def _stem(self, x: torch.Tensor, spec: CNNSpec) -> torch.Tensor:
        """The first block's input: ``x``, or its token ids embedded into the first layer's width."""
        if self.embed is None:
            return x
        return embed_ids(self.embed, x)[:, :, : spec.layers[0].channels].transpose(1, 2)

    @torch.no_grad()
    def _positions(self) -> dict[int, int]:
        """Features per channel after ``d`` layers (1 with a GAP head); and, in
        ``conv_positions``, the output positions of each layer's convolution."""
        out, x = {}, self._stem(torch.zeros(2, *self.input_shape), self.largest())
        self.conv_positions: list[int] = []
        was = self.training
        self.eval()
        for i, block in enumerate(self.blocks, start=1):
            y = block.conv(x, max(self.widths), max(self.kernels))
            self.conv_positions.append(int(np.prod(y.shape[2:])))
            x = block(x, max(self.widths), max(self.kernels))
            out[i] = 1 if self.per_token else int(self.pool(x).shape[1]) // x.shape[1]
        self.train(was)
        return out

    def macs(self, spec: CNNSpec) -> int:
        """Multiply-accumulates per sample of sub-network ``spec``, counted from its shapes (what
        :func:`slimnas.measure.count_macs` finds on its plain model, without building it)."""
        total, in_c, ndim = 0, self.input_shape[0], len(self.input_shape) - 1
        if self.embed is not None:
            in_c, ndim = spec.layers[0].channels, 1
        for i, layer in enumerate(spec.layers):
            c = layer.channels
            total += self.conv_positions[i] * c * in_c * layer.kernel**ndim
            if spec.residual and not (in_c == c and layer.stride == 1):
                total += self.conv_positions[i] * c * in_c  # the 1x1 projection
            in_c = c
        per_sample = self.conv_positions[len(spec.layers) - 1] if self.per_token else self.positions[len(spec.layers)]
        return total + in_c * per_sample * self.n_classes

    def compose(self, widths: Sequence[int], kernels: Sequence[int] | None = None) -> CNNSpec:
        kernels = [max(self.kernels)] * len(widths) if kernels is None else kernels
        layers = tuple(replace(sk, channels=int(c), kernel=int(k))
                       for sk, c, k in zip(self.skeleton.layers, widths, kernels, strict=False))
        return replace(self.skeleton, layers=layers)

    def contains(self, spec: Any) -> bool:
        if not isinstance(spec, CNNSpec) or len(spec.layers) not in self.depths:
            return False
        if any(c.channels not in self.widths or c.kernel not in self.kernels for c in spec.layers):
            return False
        return spec == self.compose([c.channels for c in spec.layers], [c.kernel for c in spec.layers])

    def run(self, x: torch.Tensor, spec: CNNSpec) -> torch.Tensor:
        x = self._stem(x, spec)
        for block, layer in zip(self.blocks, spec.layers, strict=False):
            x = block(x, layer.channels, layer.kernel)
        if self.per_token:  # (N, L, outputs): one prediction per position
            return self.heads[str(len(spec.layers))](self.dropout(x.transpose(1, 2)), self.n_classes)
        return self.heads[str(len(spec.layers))](self.dropout(self.pool(x)), self.n_classes)

    @torch.no_grad()
    def extract(self, spec: CNNSpec) -> ConvNet:
        if not self.contains(spec):
            raise ValueError(f"not a sub-network of this cnn supernet: {spec!r}")
        plain = ConvNet(spec, self.input_shape, self.n_classes)
        in_c = self.input_shape[0]
        if self.embed is not None:
            in_c = spec.layers[0].channels
            plain.embed.weight.copy_(self.embed.weight[:, :in_c])
        for block, target, layer in zip(self.blocks, plain.features, spec.layers, strict=False):
            c = layer.channels
            target.conv.weight.copy_(block.conv.weight_for(c, in_c, layer.kernel))
            if block.conv.bias is not None:
                target.conv.bias.copy_(block.conv.bias[:c])
            if block.bn is not None:
                _copy_bn(target.bn, block.bn, c)
            if isinstance(target.shortcut, nn.Sequential):  # a projection: the identity has no weights
                target.shortcut[0].weight.copy_(block.proj.weight_for(c, in_c, 1))
                if block.proj.bias is not None:
                    target.shortcut[0].bias.copy_(block.proj.bias[:c])
                if block.proj_bn is not None:
                    _copy_bn(target.shortcut[1], block.proj_bn, c)
            in_c = c
        head = self.heads[str(len(spec.layers))]
        plain.classifier.weight.copy_(head.weight[:, : plain.classifier.in_features])
        plain.classifier.bias.copy_(head.bias)
        return plain.eval()

    def _groups(self) -> list[list[int]]:
        """Layers whose channels must share one order: an identity skip adds a layer's input to
        its output channel by channel (residual skeletons, stride 1 after the first layer)."""
        groups: list[list[int]] = []
        for i, layer in enumerate(self.skeleton.layers[: len(self.blocks)]):
            if groups and self.skeleton.residual and layer.stride == 1:
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    @torch.no_grad()
    def sort_channels(self) -> None:
        """OFA's reorganisation: a layer's output channels ordered by the L1 norm of the weights
        that read them (the next layer's convolution and projection, and the classifier of the
        depth ending there), largest first."""
        n = len(self.blocks)
        scores = []
        for i in range(n):
            s = torch.zeros(max(self.widths))
            if i + 1 < n:
                nxt = self.blocks[i + 1]
                s += nxt.conv.weight.abs().transpose(0, 1).reshape(s.numel(), -1).sum(1)
                if nxt.proj is not None:
                    s += nxt.proj.weight.abs().transpose(0, 1).reshape(s.numel(), -1).sum(1)
            if str(i + 1) in self.heads:
                w = self.heads[str(i + 1)].weight.abs()
                s += w.reshape(w.shape[0], s.numel(), -1).sum((0, 2))
            scores.append(s)
        perms = {}
        for group in self._groups():
            order = importance_order(sum(scores[i] for i in group))
            perms.update(dict.fromkeys(group, order))
        for i, perm in perms.items():
            block = self.blocks[i]
            for conv in (block.conv, block.proj):
                if conv is not None:
                    permute_(conv.weight, perm, 0)
                    if conv.bias is not None:
                        permute_(conv.bias, perm, 0)
            _permute_bn(block.bn, perm)
            _permute_bn(block.proj_bn, perm)
            if i + 1 < n:
                nxt = self.blocks[i + 1]
                permute_(nxt.conv.weight, perm, 1)
                if nxt.proj is not None:
                    permute_(nxt.proj.weight, perm, 1)
            if str(i + 1) in self.heads:
                head = self.heads[str(i + 1)]
                p = self.positions[i + 1]
                cols = (perm[:, None] * p + torch.arange(p)[None, :]).reshape(-1)
                permute_(head.weight, cols, 1)
        if self.embed is not None and 0 in perms:  # the embedding's columns are the first layer's inputs:
            permute_(self.embed.weight, perms[0], 1)  # moved with them, as a residual first layer adds them
            for conv in (self.blocks[0].conv, self.blocks[0].proj):
                if conv is not None:
                    permute_(conv.weight, perms[0], 1)

    def genes(self, spec: CNNSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"n_layers": len(spec.layers)}
        for i, layer in enumerate(spec.layers):
            out.update({f"channels_{i}": layer.channels, f"kernel_{i}": layer.kernel, f"stride_{i}": layer.stride,
                        f"dilation_{i}": layer.dilation, f"pool_{i}": layer.pool})
        out.update(activation=spec.activation, batch_norm=spec.batch_norm, residual=spec.residual, head=spec.head,
                   dropout=spec.dropout)
        return out

    def encode(self, spec: CNNSpec) -> list[float]:
        out = one_hot(len(spec.layers), self.depths)
        for i in range(max(self.depths)):
            layer = spec.layers[i] if i < len(spec.layers) else None
            out += one_hot(layer and layer.channels, self.widths) + one_hot(layer and layer.kernel, self.kernels)
        return out

    def layer_groups(self, spec: CNNSpec) -> list[tuple[str, ...]]:
        plain_blocks = ConvNet(spec, self.input_shape, self.n_classes).features if self.skeleton.residual else None
        groups = []
        for i in range(len(spec.layers)):
            names = [f"features.{i}.conv"]
            if plain_blocks is not None and isinstance(plain_blocks[i].shortcut, nn.Sequential):
                names.append(f"features.{i}.shortcut.0")
            groups.append(tuple(names))
        return [*groups, ("classifier",)]


class ElasticMLP(BaseSupernet):
    """Every sub-network of an MLP space: elastic depth and per-layer width.

    Args:
        depths, widths: the values of the elastic dimensions.
        skeleton: an :class:`~slimnas.models.MLPSpec` whose activation, dropout and batch norm
            every sub-network shares (its widths are ignored).
    """

    family = "mlp"

    def __init__(self, *, depths: list[int], widths: list[int], skeleton: MLPSpec, input_shape: tuple[int, ...],
                 n_classes: int) -> None:
        super().__init__()
        self.depths, self.widths = sorted(depths), sorted(widths)
        self.skeleton, self.input_shape, self.n_classes = skeleton, tuple(input_shape), n_classes
        n_in = int(np.prod(input_shape))
        w = max(self.widths)
        self.linears = nn.ModuleList(ElasticLinear(n_in if i == 0 else w, w) for i in range(max(self.depths)))
        self.bns = nn.ModuleList(ElasticBatchNorm(w) for _ in self.linears) if skeleton.batch_norm else None
        self.act = make_activation(skeleton.activation)
        self.dropout = nn.Dropout(skeleton.dropout) if skeleton.dropout > 0 else nn.Identity()
        self.heads = nn.ModuleDict({str(d): ElasticLinear(w, n_classes) for d in self.depths})

    @property
    def choices(self) -> dict[str, list]:
        return {"depth": list(self.depths), "width": list(self.widths)}

    def compose(self, widths: Sequence[int], kernels: Sequence[int] | None = None) -> MLPSpec:
        return replace(self.skeleton, widths=tuple(int(w) for w in widths))

    def largest(self) -> MLPSpec:
        return self.compose([max(self.widths)] * max(self.depths))

    def smallest(self, dims: Sequence[str] = ELASTIC) -> MLPSpec:
        n = min(self.depths) if "depth" in dims else max(self.depths)
        return self.compose([min(self.widths) if "width" in dims else max(self.widths)] * n)

    def sample(self, rng: np.random.Generator, dims: Sequence[str] = ELASTIC, depth: int | None = None) -> MLPSpec:
        n = _depth(self.depths, rng, dims, depth)
        if "width" not in dims:
            return self.compose([max(self.widths)] * n)
        return self.compose([self.widths[int(i)] for i in rng.integers(len(self.widths), size=n)])

    def contains(self, spec: Any) -> bool:
        return (isinstance(spec, MLPSpec) and len(spec.widths) in self.depths
                and all(w in self.widths for w in spec.widths) and spec == self.compose(list(spec.widths)))

    def run(self, x: torch.Tensor, spec: MLPSpec) -> torch.Tensor:
        x = x.flatten(1)
        for i, w in enumerate(spec.widths):
            x = self.linears[i](x, w)
            if self.bns is not None:
                x = self.bns[i](x)
            x = self.dropout(self.act(x))
        return self.heads[str(len(spec.widths))](x, self.n_classes)

    def macs(self, spec: MLPSpec) -> int:
        n_in, total = int(np.prod(self.input_shape)), 0
        for w in spec.widths:
            total, n_in = total + n_in * w, w
        return total + n_in * self.n_classes

    @torch.no_grad()
    def extract(self, spec: MLPSpec) -> MLP:
        if not self.contains(spec):
            raise ValueError(f"not a sub-network of this mlp supernet: {spec!r}")
        plain = MLP(spec, self.input_shape, self.n_classes)
        linears = [m for m in plain.features if isinstance(m, nn.Linear)]
        bns = [m for m in plain.features if isinstance(m, nn.BatchNorm1d)]
        n_in = int(np.prod(self.input_shape))
        for i, (target, w) in enumerate(zip(linears, spec.widths, strict=True)):
            target.weight.copy_(self.linears[i].weight[:w, :n_in])
            target.bias.copy_(self.linears[i].bias[:w])
            if self.bns is not None:
                _copy_bn(bns[i], self.bns[i], w)
            n_in = w
        head = self.heads[str(len(spec.widths))]
        plain.classifier.weight.copy_(head.weight[:, :n_in])
        plain.classifier.bias.copy_(head.bias)
        return plain.eval()

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Units ordered by the L1 norm of the weights that read them (next layer, classifier)."""
        n, w = len(self.linears), max(self.widths)
        perms = []
        for i in range(n):
            s = torch.zeros(w)
            if i + 1 < n:
                s += self.linears[i + 1].weight.abs().sum(0)
            if str(i + 1) in self.heads:
                s += self.heads[str(i + 1)].weight.abs().sum(0)
            perms.append(importance_order(s))
        for i, perm in enumerate(perms):
            permute_(self.linears[i].weight, perm, 0)
            permute_(self.linears[i].bias, perm, 0)
            _permute_bn(self.bns[i] if self.bns is not None else None, perm)
            if i + 1 < n:
                permute_(self.linears[i + 1].weight, perm, 1)
            if str(i + 1) in self.heads:
                permute_(self.heads[str(i + 1)].weight, perm, 1)

    def genes(self, spec: MLPSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"n_layers": len(spec.widths)}
        out.update({f"width_{i}": w for i, w in enumerate(spec.widths)})
        out.update(activation=spec.activation, dropout=spec.dropout, batch_norm=spec.batch_norm)
        return out

    def encode(self, spec: MLPSpec) -> list[float]:
        out = one_hot(len(spec.widths), self.depths)
        for i in range(max(self.depths)):
            out += one_hot(spec.widths[i] if i < len(spec.widths) else None, self.widths)
        return out

    def layer_groups(self, spec: MLPSpec) -> list[tuple[str, ...]]:
        plain = MLP(spec, self.input_shape, self.n_classes)
        names = [f"features.{i}" for i, m in enumerate(plain.features) if isinstance(m, nn.Linear)]
        return [(n,) for n in names] + [("classifier",)]


def _depth(depths: Sequence[int], rng: np.random.Generator, dims: Sequence[str], depth: int | None) -> int:
    """A sub-network's depth: ``depth`` or a uniform draw where ``dims`` makes it elastic, else
    the largest."""
    if "depth" not in dims:
        return max(depths)
    return int(depth) if depth is not None else int(depths[int(rng.integers(len(depths)))])


def _default_strides(choices: list[int], n: int, size: int, pools: list[str]) -> list[int]:
    """The first layer at the smallest stride; each later one at the largest while the sequence
    keeps at least :data:`MIN_POSITIONS` positions, else the smallest."""
    lo, hi, out = min(choices), max(choices), []
    for i in range(n):
        stride = lo if i == 0 or (size - 1) // hi + 1 < MIN_POSITIONS else hi
        size = (size - 1) // stride + 1
        if pools[i] != "none" and size >= 2:
            size //= 2
        out.append(stride)
    return out


def cnn_supernet(params: dict[str, Param], input_shape: tuple[int, ...], n_classes: int, *,
                 fixed: dict | None = None, kernel_transform: bool = False,
                 field: str = "strategy.options.fixed", vocab_size: int = 0, per_token: str = "") -> ElasticCNN:
    """The supernet of a CNN space (``space.cnn``'s parameters), skeleton as the module says;
    ``vocab_size`` and ``per_token`` as :class:`ElasticCNN` takes them (a per-token skeleton has
    every stride 1 and no pooling, as :meth:`~slimnas.models.CNNFamily.per_token` makes them)."""
    fixed = dict(fixed or {})
    _check_fixed(fixed, [k for k in params if k not in CNN_ELASTIC], field)
    depths = param_choices(params["n_layers"], "space.cnn.n_layers")
    widths = param_choices(params["channels"], "space.cnn.channels")
    kernels = param_choices(params["kernel"], "space.cnn.kernel")
    n = max(depths)
    pools = fixed_layers(params, fixed, "pool", field, n) or [fixed_value(params, {}, "pool", field)] * n
    dilations = fixed_layers(params, fixed, "dilation", field, n) or [fixed_value(params, {}, "dilation", field)] * n
    strides = fixed_layers(params, fixed, "stride", field, n)
    if per_token:
        strides, pools = [1] * n, ["none"] * n
    if strides is None:
        length = input_shape[-1] if vocab_size else min(input_shape[1:])  # token ids: (L,) or (1, L)
        strides = _default_strides(param_choices(params["stride"], "space.cnn.stride"), n, length, pools)
    layers = tuple(ConvLayer(channels=max(widths), kernel=max(kernels), stride=int(s), dilation=int(d), pool=p)
                   for s, d, p in zip(strides, dilations, pools, strict=True))
    skeleton = CNNSpec(layers=layers, activation=fixed_value(params, fixed, "activation", field),
                       batch_norm=fixed_value(params, fixed, "batch_norm", field, default=True),
                       residual=fixed_value(params, fixed, "residual", field),
                       head="gap" if per_token else fixed_value(params, fixed, "head", field, default="gap"),
                       dropout=float(fixed_value(params, fixed, "dropout", field)), vocab_size=vocab_size,
                       per_token=per_token)
    return ElasticCNN(depths=depths, widths=widths, kernels=kernels, skeleton=skeleton, input_shape=input_shape,
                      n_classes=n_classes, kernel_transform=kernel_transform)


def mlp_supernet(params: dict[str, Param], input_shape: tuple[int, ...], n_classes: int, *,
                 fixed: dict | None = None, kernel_transform: bool = False,
                 field: str = "strategy.options.fixed") -> ElasticMLP:
    """The supernet of an MLP space (``space.mlp``'s parameters)."""
    fixed = dict(fixed or {})
    _check_fixed(fixed, [k for k in params if k not in MLP_ELASTIC], field)
    skeleton = MLPSpec(widths=(), activation=fixed_value(params, fixed, "activation", field),
                       dropout=float(fixed_value(params, fixed, "dropout", field)),
                       batch_norm=fixed_value(params, fixed, "batch_norm", field))
    return ElasticMLP(depths=param_choices(params["n_layers"], "space.mlp.n_layers"),
                      widths=param_choices(params["width"], "space.mlp.width"), skeleton=skeleton,
                      input_shape=input_shape, n_classes=n_classes)
