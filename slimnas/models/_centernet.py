"""The CenterNet family: searched detectors (Zhou et al. 2019, "Objects as Points"), for the
detection task on images (``(C, H, W)``).

A strided stem, then stages of convolution blocks (batch norm, ReLU; the first block of a stage
strides by 2 until the heatmap's stride is ``stride``), and two heads read the last feature map:
a class heatmap (one channel per class of the task) and the distances from each cell to its
box's four sides. In eval mode the heatmap's peaks (a 3x3 max-pool, no NMS) and the top ``k`` of
them are the answer: fixed-size batched boxes, scores and labels, so the whole model traces
(pruning, ONNX, int8). Given torchvision-style targets it returns its losses (a focal loss on the
heatmap, L1 on the sides at the objects' centres), which the detection task trains on.

:meth:`CenterNetFamily.build` wraps the detector in
:class:`~slimnas.models._detector.DetectorModel`, as ``compress`` wraps a user's detector: one
packed ``(N, K, 6)`` answer, heads kept whole by pruning, ``boxes``/``scores``/``labels`` in the
exported file. ``examples/detector.py`` is the same idea written as a user writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._detector import DetectorModel
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import layer_count, positive_int

#: the heatmap's bias at the start: few peaks (CenterNet's prior)
HEAT_PRIOR = -2.0


@dataclass(frozen=True)
class DetStage:
    """``blocks`` convolution blocks of ``width`` channels and ``kernel`` x ``kernel`` kernels."""

    width: int
    blocks: int = 1
    kernel: int = 3


@dataclass(frozen=True)
class CenterNetSpec:
    """A CenterNet-style detector: stem, stages, a heatmap and a box-sides head."""

    family: ClassVar[str] = "centernet"
    stages: tuple[DetStage, ...]
    stem: int = 16
    head: int = 16  # the heads' hidden width
    stride: int = 4  # the heatmap's stride in pixels, at most (the stem's 2, then each stage's first block's 2)
    k: int = 20  # detections per image: the heatmap's top-K peaks


def block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU())


def decode(heat: torch.Tensor, sides: torch.Tensor, k: int, stride: int) -> dict[str, torch.Tensor]:
    """Batched ``boxes (B, K, 4)``, ``scores (B, K)``, ``labels (B, K)`` of a heatmap ``(B, C, H, W)``
    (logits) and box sides ``(B, 4, H, W)`` (in cells): the top ``k`` peaks of the heatmap."""
    b, c, h, w = heat.shape
    p = heat.sigmoid()
    peaks = p * (F.max_pool2d(p, 3, 1, 1) == p).float()
    scores, idx = peaks.flatten(1).topk(min(k, c * h * w))
    labels = torch.div(idx, h * w, rounding_mode="floor")
    cell = idx - labels * (h * w)
    ys = torch.div(cell, w, rounding_mode="floor")
    xs = cell - ys * w
    d = sides.flatten(2).gather(2, cell[:, None, :].expand(b, 4, cell.shape[1])) * stride  # (B, 4, K)
    cx, cy = (xs.float() + 0.5) * stride, (ys.float() + 0.5) * stride
    boxes = torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], -1)
    return {"boxes": boxes.clamp(0, float(stride * max(h, w))), "scores": scores, "labels": labels}


def losses(heat: torch.Tensor, sides: torch.Tensor, targets: list[dict[str, torch.Tensor]],
           stride: int) -> dict[str, torch.Tensor]:
    """CenterNet's losses of a heatmap and box sides against per-image targets (``boxes``
    ``(n, 4)`` in pixels, ``labels`` ``(n,)``): a focal loss on the heatmap (a Gaussian peak at
    each object's centre cell, its spread a third of the box's shorter side) and L1 on the
    sides (in cells) at the centres, both per object; all objects of the batch at once."""
    b, c, h, w = heat.shape
    dev = heat.device
    image = torch.cat([torch.full((len(t["labels"]),), i, dtype=torch.long) for i, t in enumerate(targets)]).to(dev)
    boxes = torch.cat([t["boxes"].reshape(-1, 4).float() for t in targets]).to(dev)
    labels = torch.cat([t["labels"].long() for t in targets]).to(dev)
    gt = torch.zeros_like(heat)
    dist = torch.zeros_like(sides)
    mask = torch.zeros(b, 1, h, w, device=dev)
    if len(boxes):
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / stride
        gx = centre[:, 0].clamp(0, w - 1).floor().long()
        gy = centre[:, 1].clamp(0, h - 1).floor().long()
        sigma = ((boxes[:, 2:] - boxes[:, :2]).min(1).values / stride / 3).clamp(min=0.5)
        yy = torch.arange(h, device=dev).float()[None, :, None]
        xx = torch.arange(w, device=dev).float()[None, None, :]
        g = torch.exp(-((xx - gx[:, None, None]) ** 2 + (yy - gy[:, None, None]) ** 2) / (2 * sigma[:, None, None] ** 2))
        rows = (image * c + labels)[:, None].expand(-1, h * w)
        gt.view(b * c, h * w).scatter_reduce_(0, rows, g.reshape(-1, h * w), "amax")
        cxy = torch.stack([(gx + 0.5) * stride, (gy + 0.5) * stride], 1)
        dist[image, :, gy, gx] = torch.cat([cxy - boxes[:, :2], boxes[:, 2:] - cxy], 1) / stride
        mask[image, 0, gy, gx] = 1.0
    p = heat.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    focal = -(pos * (1 - p) ** 2 * p.log() + (1 - pos) * (1 - gt) ** 4 * p**2 * (1 - p).log()).sum()
    n = pos.sum().clamp(min=1)
    return {"heatmap": focal / n, "sides": (F.l1_loss(sides, dist, reduction="none") * mask).sum() / n}


class CenterNet(nn.Module):
    """The detector a :class:`CenterNetSpec` describes: ``model(images)`` in eval mode answers
    with batched boxes, scores and labels; ``model(images, targets)`` with its losses."""

    def __init__(self, spec: CenterNetSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError("space.family", "images (C, H, W) for the centernet family", f"inputs {input_shape}")
        self.k, stride = spec.k, 2
        layers, c_in = [block(input_shape[0], spec.stem, 3, 2)], spec.stem
        for stage in spec.stages:
            for i in range(stage.blocks):
                step = 2 if i == 0 and stride < spec.stride else 1
                stride *= step
                layers.append(block(c_in, stage.width, stage.kernel, step))
                c_in = stage.width
        self.stride = stride
        self.backbone = nn.Sequential(*layers)
        self.heat = nn.Sequential(block(c_in, spec.head), nn.Conv2d(spec.head, n_classes, 1))
        self.sides = nn.Sequential(block(c_in, spec.head), nn.Conv2d(spec.head, 4, 1))
        nn.init.constant_(self.heat[-1].bias, HEAT_PRIOR)

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        f = self.backbone(images)
        heat, sides = self.heat(f), self.sides(f)
        if targets is not None:
            return losses(heat, sides, targets, self.stride)
        return decode(heat, sides, self.k, self.stride)


def _power_of_two(v: int) -> bool:
    return v >= 2 and v & (v - 1) == 0


@register_family("centernet")
class CenterNetFamily(BaseFamily):
    spec = CenterNetSpec
    data_kinds = ("image",)
    tasks = ("detection",)
    keys = {
        "n_stages": layer_count({"low": 1, "high": 3}),
        "blocks": layer_count([1, 2]),
        "width": positive_int([16, 24, 32]),
        "kernel": Key(int, "odd integers >= 1", [3, 5], lambda v: v >= 1 and v % 2 == 1),
        "stem": positive_int([8, 16]),
        "head": positive_int([16, 32]),
        "stride": Key(int, "powers of two >= 2", [4], _power_of_two),
        "k": positive_int([20]),
    }

    def sample(self, draw) -> CenterNetSpec:
        n = draw("n_stages")
        stages = tuple(DetStage(width=draw("width", i), blocks=draw("blocks", i), kernel=draw("kernel", i))
                       for i in range(n))
        return CenterNetSpec(stages=stages, stem=draw("stem"), head=draw("head"), stride=draw("stride"), k=draw("k"))

    def build(self, spec: CenterNetSpec, input_shape, n_classes) -> nn.Module:
        return DetectorModel(CenterNet(spec, tuple(input_shape), n_classes))

    def supernet(self, params, input_shape, n_classes, *, fixed=None, kernel_transform=False,
                 field="strategy.options.fixed"):
        from slimnas.models._centernet_supernet import (
            centernet_supernet,  # it builds on this module
        )

        return centernet_supernet(params, tuple(input_shape), n_classes, fixed=fixed,
                                  kernel_transform=kernel_transform, field=field)

    def summary(self, spec: CenterNetSpec) -> str:
        """``centernet stem16 16x1k3-32x2k5 head32 s4 top20``: the stem's width, each stage's
        width x blocks and kernel, the heads' width, the heatmap's stride and K."""
        stages = "-".join(f"{s.width}x{s.blocks}k{s.kernel}" for s in spec.stages)
        return f"centernet stem{spec.stem} {stages} head{spec.head} s{spec.stride} top{spec.k}"

    def from_dict(self, d: dict) -> CenterNetSpec:
        return CenterNetSpec(**{**d, "stages": tuple(DetStage(**s) for s in d["stages"])})
