"""A user's detector as slimnas's data path takes models: one tensor in, one tensor out.

A detector in torchvision's convention answers in eval mode with ``boxes``, ``scores`` and
``labels`` and in training mode with a dict of its losses, given the targets. slimnas probes,
measures, prunes, calibrates and exports a model through one output tensor, so
:class:`DetectorModel` packs the eval-mode answer into ``(N, K, 6)`` (``x1, y1, x2, y2, score,
label``; :func:`~slimnas.tasks._detection.pack_outputs`) and passes ``targets`` through to the
detector in training mode (:meth:`slimnas.tasks.Task.train_output`). A detector whose answer is
batched tensors of a fixed ``K`` per image (CenterNet's peaks and top-K, no NMS) traces whole:
torch-pruning's dependency graph and the ONNX export see the packed tensor's graph.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimnas.tasks._detection import pack_outputs


class DetectorModel(nn.Module):
    """``model`` (a detector) answering with one packed ``(N, K, 6)`` tensor in eval mode, and
    with its dict of losses when called with ``targets``. The detector is ``.model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        if targets is not None:
            return self.model(x, targets)
        return pack_outputs(self.model(x))


def holds_detector(model: nn.Module) -> bool:
    """Whether ``model`` is, or wraps, a :class:`DetectorModel` (its output is packed detections)."""
    return any(isinstance(m, DetectorModel) for m in model.modules())


#: scores this close count as equal when two runtimes' answers are lined up
TIE = 1e-4


def aligned_detections(expected: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two runtimes' packed answers ``(N, K, 6)`` of one detector, lined up to compare element by
    element: ``got``'s rows of each image reordered to the ``expected`` row nearest to each (its
    largest difference), since a top-K orders scores that are equal, or equal but for rounding,
    as each runtime happens to; rows scoring within :data:`TIE` of ``expected``'s lowest score
    keep only their score in both, since which of such cells the K-th place holds is the
    runtime's choice too (a flat heatmap, a dead feature map, makes such ties)."""
    e = np.array(expected, dtype=np.float64, copy=True)
    g = np.array(got, dtype=np.float64, copy=True)
    if e.shape != g.shape or e.ndim != 3:
        return e, g
    for a, b in zip(e, g, strict=True):
        cut = a[:, 4].min() + TIE
        for rows in (a, b):
            tied = rows[:, 4] <= cut
            rows[tied, :4] = 0
            rows[tied, 5] = 0
        free = np.ones(len(b), bool)
        order = np.empty(len(b), int)
        for k, row in enumerate(a):
            dist = np.where(free, np.abs(b - row).max(1), np.inf)
            order[k] = int(np.argmin(dist))
            free[order[k]] = False
        b[:] = b[order]
    return e, g


#: the score from which a detection counts as found when two answers' boxes are compared
BOX_SCORE = 0.3
#: the overlap at which two boxes are the same box
BOX_IOU = 0.9


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` ``(n, 4)`` with every box of ``b`` ``(m, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-12)


def box_agreement(expected: np.ndarray, got: np.ndarray, *, min_score: float = BOX_SCORE,
                  iou: float = BOX_IOU) -> float:
    """The share of ``expected``'s detections (packed ``(N, K, 6)``, those scoring at least
    ``min_score``) that ``got`` finds too: a box of the same label with an IoU of at least
    ``iou``, each of ``got``'s boxes matched once (greedily, by ``expected``'s score); 1.0 when
    ``expected`` finds nothing."""
    found = total = 0
    for e, g in zip(expected, got, strict=True):
        e = e[e[:, 4] >= min_score]
        e = e[np.argsort(-e[:, 4], kind="stable")]
        g = g[g[:, 4] > 0]
        free = np.ones(len(g), bool)
        ious = box_iou(e[:, :4], g[:, :4]) if len(e) and len(g) else np.zeros((len(e), len(g)))
        for i, row in enumerate(e):
            total += 1
            ok = free & (np.round(g[:, 5]) == np.round(row[5])) & (ious[i] >= iou) if len(g) else free
            if ok.any():
                j = int(np.argmax(np.where(ok, ious[i], -1)))
                free[j] = False
                found += 1
    return found / total if total else 1.0
