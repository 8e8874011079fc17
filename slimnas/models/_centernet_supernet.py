"""The once-for-all supernet of the CenterNet family: elastic detectors for the ``supernet``
strategy on the detection task.

Elastic dimensions: depth (``n_stages``: a sub-network runs the first ``d`` stages), each stage's
width (``width``: the first ``k`` channels of its blocks) and kernel (``kernel``: the centre of
the largest). The stem, each stage's number of blocks, the heads' width, the heatmap's stride and
``k`` are the skeleton's (a choice given in ``strategy.options.fixed``, else the space's first).
The heads are kept whole (their hidden width, one heatmap channel per class, four box sides);
each depth has its own pair of heads, as :class:`~slimnas.models._supernets.ElasticCNN` has a
classifier per depth (they read the channels of the stage they follow, in its order). A
sub-network is the family's own :class:`~slimnas.models._centernet.CenterNetSpec`, extracted as
the plain detector (:class:`~slimnas.models._detector.DetectorModel`) with its inherited weights;
in eval mode the supernet answers as that model does (packed ``(N, K, 6)`` detections), given
targets with its losses (the detection task's loss), so it trains and is scored as a detector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._centernet import HEAT_PRIOR, CenterNet, CenterNetSpec, DetStage, decode, losses
from slimnas.models._detector import DetectorModel
from slimnas.models._elastic import (
    BaseSupernet,
    ElasticBatchNorm,
    ElasticConv,
    fixed_layers,
    fixed_value,
    importance_order,
    one_hot,
    param_choices,
    permute_,
)
from slimnas.models._supernets import DepthWidthKernel, _check_fixed, _copy_bn, _permute_bn
from slimnas.spaces import Param
from slimnas.tasks._detection import pack_outputs

CENTERNET_ELASTIC = ("n_stages", "width", "kernel")


class _Block(nn.Module):
    """conv -> BN -> ReLU at any width and kernel (the family's ``block``)."""

    def __init__(self, max_in: int, max_out: int, kernels: Sequence[int], stride: int, transform: bool) -> None:
        super().__init__()
        self.conv = ElasticConv(max_in, max_out, kernels, 2, stride=stride, bias=False, transform=transform)
        self.bn = ElasticBatchNorm(max_out)

    def forward(self, x: torch.Tensor, out_c: int, kernel: int) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x, out_c, kernel)))


class _Head(nn.Module):
    """A head kept whole: a 3x3 block of the heads' width on any input width, then a 1x1
    convolution to its outputs (classes or box sides)."""

    def __init__(self, max_in: int, width: int, outputs: int) -> None:
        super().__init__()
        self.block = _Block(max_in, width, [3], 1, False)
        self.out = nn.Conv2d(width, outputs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(x, self.out.in_channels, 3))


class ElasticCenterNet(DepthWidthKernel, BaseSupernet):
    """Every sub-network of a CenterNet space: elastic depth (stages), per-stage width and kernel.

    Args:
        depths, widths, kernels: the values of the elastic dimensions.
        skeleton: a :class:`~slimnas.models._centernet.CenterNetSpec` of the largest depth whose
            stem, blocks per stage, heads' width, stride and ``k`` every sub-network shares (its
            stages' widths and kernels are ignored).
        kernel_transform: OFA's learned transform from a kernel to the next smaller one.
    """

    family = "centernet"

    def __init__(self, *, depths: list[int], widths: list[int], kernels: list[int], skeleton: CenterNetSpec,
                 input_shape: tuple[int, ...], n_classes: int, kernel_transform: bool = False) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError("space.family", "images (C, H, W) for the centernet family", f"inputs {input_shape}")
        self.depths, self.widths, self.kernels = sorted(depths), sorted(widths), sorted(kernels)
        self.skeleton, self.input_shape, self.n_classes = skeleton, tuple(input_shape), n_classes
        w = max(self.widths)
        self.stem = _Block(input_shape[0], skeleton.stem, [3], 2, False)
        size = (min(input_shape[1:]) - 1) // 2 + 1
        self.stem_positions = size * size
        stages, c_in, stride = [], skeleton.stem, 2
        self.strides: dict[int, int] = {}
        self.positions: list[list[int]] = []  # output positions of each stage's blocks
        for s, stage in enumerate(skeleton.stages):
            blocks, sizes = [], []
            for j in range(stage.blocks):
                step = 2 if j == 0 and stride < skeleton.stride else 1  # as CenterNet strides
                stride *= step
                blocks.append(_Block(c_in, w, self.kernels, step, kernel_transform))
                size = (size - 1) // step + 1
                sizes.append(size * size)
                c_in = w
            stages.append(nn.ModuleList(blocks))
            self.positions.append(sizes)
            self.strides[s + 1] = stride
        self.stages = nn.ModuleList(stages)
        self.heat = nn.ModuleDict({str(d): _Head(w, skeleton.head, n_classes) for d in self.depths})
        self.sides = nn.ModuleDict({str(d): _Head(w, skeleton.head, 4) for d in self.depths})
        for head in self.heat.values():
            nn.init.constant_(head.out.bias, HEAT_PRIOR)

    def compose(self, widths: Sequence[int], kernels: Sequence[int] | None = None) -> CenterNetSpec:
        kernels = [max(self.kernels)] * len(widths) if kernels is None else kernels
        stages = tuple(replace(sk, width=int(c), kernel=int(k))
                       for sk, c, k in zip(self.skeleton.stages, widths, kernels, strict=False))
        return replace(self.skeleton, stages=stages)

    def contains(self, spec: Any) -> bool:
        if not isinstance(spec, CenterNetSpec) or len(spec.stages) not in self.depths:
            return False
        if any(s.width not in self.widths or s.kernel not in self.kernels for s in spec.stages):
            return False
        return spec == self.compose([s.width for s in spec.stages], [s.kernel for s in spec.stages])

    def forward(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        """The active sub-network's packed detections ``(N, K, 6)``, or its losses given ``targets``."""
        return self.run(x, self.active if self.active is not None else self.largest(), targets)

    def run(self, x: torch.Tensor, spec: CenterNetSpec, targets=None):
        f = self.stem(x, self.skeleton.stem, 3)
        for blocks, stage in zip(self.stages, spec.stages, strict=False):
            for block in blocks:
                f = block(f, stage.width, stage.kernel)
        depth = str(len(spec.stages))
        heat, sides, stride = self.heat[depth](f), self.sides[depth](f), self.strides[len(spec.stages)]
        if targets is not None:
            return losses(heat, sides, targets, stride)
        return pack_outputs(decode(heat, sides, spec.k, stride))

    def macs(self, spec: CenterNetSpec) -> int:
        """Multiply-accumulates per image of ``spec``'s convolutions, from its shapes (what
        :func:`slimnas.measure.count_macs` finds on its plain model)."""
        total = self.stem_positions * self.skeleton.stem * self.input_shape[0] * 9
        c_in = self.skeleton.stem
        for stage, sizes in zip(spec.stages, self.positions, strict=False):
            for p in sizes:
                total += p * stage.width * c_in * stage.kernel**2
                c_in = stage.width
        p, h = self.positions[len(spec.stages) - 1][-1], self.skeleton.head
        return total + p * (2 * h * c_in * 9 + h * (self.n_classes + 4))

    @torch.no_grad()
    def extract(self, spec: CenterNetSpec) -> DetectorModel:
        if not self.contains(spec):
            raise ValueError(f"not a sub-network of this centernet supernet: {spec!r}")
        net = CenterNet(spec, self.input_shape, self.n_classes)
        targets = iter(net.backbone)

        def copy(dst: nn.Sequential, src: _Block, out_c: int, in_c: int, kernel: int) -> None:
            dst[0].weight.copy_(src.conv.weight_for(out_c, in_c, kernel))
            _copy_bn(dst[1], src.bn, out_c)

        copy(next(targets), self.stem, self.skeleton.stem, self.input_shape[0], 3)
        c_in = self.skeleton.stem
        for blocks, stage in zip(self.stages, spec.stages, strict=False):
            for block in blocks:
                copy(next(targets), block, stage.width, c_in, stage.kernel)
                c_in = stage.width
        depth = str(len(spec.stages))
        for dst, src in ((net.heat, self.heat[depth]), (net.sides, self.sides[depth])):
            copy(dst[0], src.block, self.skeleton.head, c_in, 3)
            dst[1].weight.copy_(src.out.weight)
            dst[1].bias.copy_(src.out.bias)
        return DetectorModel(net).eval()

    @torch.no_grad()
    def sort_channels(self) -> None:
        """OFA's reorganisation: each block's output channels ordered by the L1 norm of the
        weights that read them (the next block's convolution, the heads of the depth ending
        there), largest first; the heads' own width is whole and keeps its order."""
        flat = [(s, block) for s, blocks in enumerate(self.stages) for block in blocks]
        w = max(self.widths)
        for i, (s, block) in enumerate(flat):
            readers = [flat[i + 1][1].conv] if i + 1 < len(flat) else []
            last = i + 1 == len(flat) or flat[i + 1][0] != s
            if last and str(s + 1) in self.heat:
                readers += [self.heat[str(s + 1)].block.conv, self.sides[str(s + 1)].block.conv]
            score = torch.zeros(w)
            for conv in readers:
                score += conv.weight.abs().transpose(0, 1).reshape(w, -1).sum(1)
            perm = importance_order(score)
            permute_(block.conv.weight, perm, 0)
            _permute_bn(block.bn, perm)
            for conv in readers:
                permute_(conv.weight, perm, 1)

    def genes(self, spec: CenterNetSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"n_stages": len(spec.stages)}
        for i, stage in enumerate(spec.stages):
            out.update({f"width_{i}": stage.width, f"blocks_{i}": stage.blocks, f"kernel_{i}": stage.kernel})
        out.update(stem=spec.stem, head=spec.head, stride=spec.stride, k=spec.k)
        return out

    def encode(self, spec: CenterNetSpec) -> list[float]:
        out = one_hot(len(spec.stages), self.depths)
        for i in range(max(self.depths)):
            stage = spec.stages[i] if i < len(spec.stages) else None
            out += one_hot(stage and stage.width, self.widths) + one_hot(stage and stage.kernel, self.kernels)
        return out

    def layer_groups(self, spec: CenterNetSpec) -> list[tuple[str, ...]]:
        """Per stage its blocks' convolutions (the stem with the first), then the heads'."""
        groups, index = [], 1
        for i, stage in enumerate(spec.stages):
            names = ["model.backbone.0.0"] if i == 0 else []
            names += [f"model.backbone.{index + j}.0" for j in range(stage.blocks)]
            index += stage.blocks
            groups.append(tuple(names))
        return [*groups, ("model.heat.0.0", "model.heat.1", "model.sides.0.0", "model.sides.1")]


def centernet_supernet(params: dict[str, Param], input_shape: tuple[int, ...], n_classes: int, *,
                       fixed: dict | None = None, kernel_transform: bool = False,
                       field: str = "strategy.options.fixed") -> ElasticCenterNet:
    """The supernet of a CenterNet space (``space.centernet``'s parameters), skeleton as the
    module says."""
    fixed = dict(fixed or {})
    _check_fixed(fixed, [k for k in params if k not in CENTERNET_ELASTIC], field)
    depths = param_choices(params["n_stages"], "space.centernet.n_stages")
    widths = param_choices(params["width"], "space.centernet.width")
    kernels = param_choices(params["kernel"], "space.centernet.kernel")
    n = max(depths)
    blocks = fixed_layers(params, fixed, "blocks", field, n) or [fixed_value(params, {}, "blocks", field)] * n
    stages = tuple(DetStage(width=max(widths), blocks=int(b), kernel=max(kernels)) for b in blocks)
    skeleton = CenterNetSpec(stages=stages, **{k: int(fixed_value(params, fixed, k, field))
                                               for k in ("stem", "head", "stride", "k")})
    return ElasticCenterNet(depths=depths, widths=widths, kernels=kernels, skeleton=skeleton,
                            input_shape=input_shape, n_classes=n_classes, kernel_transform=kernel_transform)
