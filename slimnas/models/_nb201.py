"""The NAS-Bench-201 cell space as a trainable family (Dong & Yang 2020, "NAS-Bench-201: Extending
the Scope of Reproducible Neural Architecture Search", ICLR).

A cell is a DAG of four nodes: node ``j`` sums one operation on each edge from every earlier node
``i`` (six edges, ``edge_<j>_<i>``), each one of five operations: ``none`` (zero: the edge is
cut), ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3`` (ReLU -> conv -> BN) and
``avg_pool_3x3``; the cell's output is node 3. The network: a 3x3 stem convolution with batch
norm, three stages of ``cells`` cells of ``width``, ``2 width`` and ``4 width`` channels, a
residual reduction block (stride 2, the width doubled) between stages, then BN, ReLU, global
average pooling and a linear classifier. NAS-Bench-201 tabulated ``width=16, cells=5``; its
15,625 cells are the same six edges here, so a cell found on the table
(``slimnas search --benchmark nasbench201:cifar10``) can be trained for real with this family.

Works on 2-D images ``(C, H, W)`` and 1-D sequences ``(C, L)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._layers import bn_cls, conv_cls, conv_ndim
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import positive_int

#: the five operations, in NAS-Bench-201's order (its tables index them 0-4)
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: the six edges ``(to, from)`` in NAS-Bench-201's order (``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``)
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
EDGE_KEYS = tuple(f"edge_{j}_{i}" for j, i in EDGES)


@dataclass(frozen=True)
class NB201Spec:
    """A NAS-Bench-201 network: the cell's six operations (in :data:`EDGES` order), the stem's
    width and the cells per stage."""

    family: ClassVar[str] = "nb201"
    ops: tuple[str, ...]
    width: int = 16
    cells: int = 5

    @property
    def arch_str(self) -> str:
        """NAS-Bench-201's string of the cell, ``|nor_conv_3x3~0|+|...``."""
        nodes = [[f"{op}~{i}" for (j, i), op in zip(EDGES, self.ops, strict=True) if j == n] for n in (1, 2, 3)]
        return "+".join("|" + "|".join(node) + "|" for node in nodes)


class Zero(nn.Module):
    """The ``none`` operation: zeros shaped like its input (the edge carries nothing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int, ndim: int) -> nn.Module:
    conv, bn = conv_cls(ndim), bn_cls(ndim)
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        k = 1 if name == "nor_conv_1x1" else 3
        return nn.Sequential(nn.ReLU(), conv(channels, channels, k, padding=k // 2, bias=False), bn(channels))
    pool = nn.AvgPool1d if ndim == 1 else nn.AvgPool2d
    return pool(3, stride=1, padding=1, count_include_pad=False)


class Cell(nn.Module):
    """Four nodes; node ``j`` is the sum of its incoming edges' operations; returns node 3."""

    def __init__(self, ops: tuple[str, ...], channels: int, ndim: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels, ndim) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            terms = [self.edges[e](nodes[i]) for e, (to, i) in enumerate(EDGES) if to == j]
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            nodes.append(total)
        return nodes[3]


class ReductionBlock(nn.Module):
    """NAS-Bench-201's residual reduction: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus an
    average-pooled 1x1 projection of the input."""

    def __init__(self, in_ch: int, out_ch: int, ndim: int) -> None:
        super().__init__()
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        pool = nn.AvgPool1d if ndim == 1 else nn.AvgPool2d
        self.a = nn.Sequential(nn.ReLU(), conv(in_ch, out_ch, 3, stride=2, padding=1, bias=False), bn(out_ch))
        self.b = nn.Sequential(nn.ReLU(), conv(out_ch, out_ch, 3, padding=1, bias=False), bn(out_ch))
        self.shortcut = nn.Sequential(pool(2, stride=2), conv(in_ch, out_ch, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class NB201Net(nn.Module):
    def __init__(self, spec: NB201Spec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        ndim = conv_ndim(input_shape, "nb201")
        if min(input_shape[1:]) < 4:
            raise ConfigError("space.family", "inputs at least 4 wide for 'nb201' (two reductions halve them)",
                              f"input {input_shape}")
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        c = spec.width
        self.stem = nn.Sequential(conv(input_shape[0], c, 3, padding=1, bias=False), bn(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage:
                layers.append(ReductionBlock(c, 2 * c, ndim))
                c *= 2
            layers.extend(Cell(spec.ops, c, ndim) for _ in range(spec.cells))
        self.layers = nn.Sequential(*layers)
        self.last = nn.Sequential(bn(c), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.last(self.layers(self.stem(x)))))


def _op_key() -> Key:
    return Key(str, f"operations from {list(OPS)}", list(OPS), lambda v: v in OPS)


@register_family("nb201")
class NB201Family(BaseFamily):
    spec = NB201Spec
    keys = {
        **{name: _op_key() for name in EDGE_KEYS},
        "width": positive_int([8, 16]),
        "cells": positive_int([1, 2]),
    }
    data_kinds = ("sequence", "image")
    no_per_token = ("its NAS-Bench-201 skeleton halves the input twice (stride-2 reductions) and takes no "
                    "token ids; without them it is not the tabulated space")

    def sample(self, draw) -> NB201Spec:
        return NB201Spec(ops=tuple(draw(k) for k in EDGE_KEYS), width=draw("width"), cells=draw("cells"))

    def build(self, spec: NB201Spec, input_shape, n_classes) -> nn.Module:
        return NB201Net(spec, tuple(input_shape), n_classes)

    def summary(self, spec: NB201Spec) -> str:
        """The cell's six edges as NAS-Bench-201's op indices, then width x cells:
        ``nb201 333132 16x5``."""
        return f"nb201 {''.join(str(OPS.index(op)) for op in spec.ops)} {spec.width}x{spec.cells}"
