"""A tiny CenterNet-style detector, written as a user of slimnas writes one (Zhou et al. 2019,
"Objects as Points"): a class heatmap and the distances from each cell to its box's sides; in
eval mode the heatmap's peaks (a 3x3 max-pool, no NMS) and the top ``k`` of them as fixed-size
batched boxes, scores and labels, so the whole model traces (pruning, ONNX, int8). In training
mode, given torchvision-style targets, it returns its losses."""

import torch
import torch.nn.functional as F
from torch import nn


def block(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class TinyCenterNet(nn.Module):
    def __init__(self, n_classes=4, width=16, k=20, stride=4):
        super().__init__()
        self.n_classes, self.k, self.stride = n_classes, k, stride
        self.backbone = nn.Sequential(block(3, width, 2), block(width, 2 * width, 2), block(2 * width, 2 * width))
        self.heat = nn.Sequential(block(2 * width, width), nn.Conv2d(width, n_classes, 1))
        self.sides = nn.Sequential(block(2 * width, width), nn.Conv2d(width, 4, 1))
        self.heat[-1].bias.data.fill_(-2.0)  # start with few peaks (CenterNet's prior)

    def forward(self, images, targets=None):
        f = self.backbone(images)
        heat, sides = self.heat(f), self.sides(f)
        if targets is not None:
            return self.losses(heat, sides, targets)
        return self.decode(heat, sides)

    def decode(self, heat, sides):
        b, c, h, w = heat.shape
        p = heat.sigmoid()
        peaks = p * (F.max_pool2d(p, 3, 1, 1) == p).float()
        scores, idx = peaks.flatten(1).topk(self.k)
        labels = torch.div(idx, h * w, rounding_mode="floor")
        cell = idx - labels * (h * w)
        ys = torch.div(cell, w, rounding_mode="floor")
        xs = cell - ys * w
        d = sides.flatten(2).gather(2, cell[:, None, :].expand(b, 4, self.k)) * self.stride  # (B, 4, K)
        cx, cy = (xs.float() + 0.5) * self.stride, (ys.float() + 0.5) * self.stride
        boxes = torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], -1)
        boxes = boxes.clamp(0, float(self.stride * max(h, w)))
        return {"boxes": boxes, "scores": scores, "labels": labels}

    def losses(self, heat, sides, targets):
        b, c, h, w = heat.shape
        gt = torch.zeros_like(heat)
        dist = torch.zeros_like(sides)
        mask = torch.zeros(b, 1, h, w, device=heat.device)
        yy, xx = torch.meshgrid(torch.arange(h, device=heat.device), torch.arange(w, device=heat.device), indexing="ij")
        for i, t in enumerate(targets):
            for box, label in zip(t["boxes"], t["labels"], strict=True):
                cx, cy = (box[0] + box[2]) / 2 / self.stride, (box[1] + box[3]) / 2 / self.stride
                gx, gy = int(cx.clamp(0, w - 1)), int(cy.clamp(0, h - 1))
                sigma = max(0.5, float(min(box[2] - box[0], box[3] - box[1])) / self.stride / 3)
                g = torch.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma**2))
                gt[i, label] = torch.maximum(gt[i, label], g)
                centre = torch.tensor([(gx + 0.5) * self.stride, (gy + 0.5) * self.stride], device=heat.device)
                dist[i, :, gy, gx] = torch.cat([centre - box[:2], box[2:] - centre]) / self.stride
                mask[i, 0, gy, gx] = 1.0
        p = heat.sigmoid().clamp(1e-4, 1 - 1e-4)
        pos = gt.eq(1).float()
        focal = -(pos * (1 - p) ** 2 * p.log() + (1 - pos) * (1 - gt) ** 4 * p**2 * (1 - p).log()).sum()
        n = pos.sum().clamp(min=1)
        return {"heatmap": focal / n, "sides": (F.l1_loss(sides, dist, reduction="none") * mask).sum() / n}


def build():
    torch.manual_seed(0)
    return TinyCenterNet()
