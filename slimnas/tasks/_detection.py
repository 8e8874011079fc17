"""Object detection: per image, boxes ``(n, 4)`` (``x1, y1, x2, y2`` in pixels) and class ids
``(n,)``. The model is the user's, in torchvision's convention: in training mode it takes the
targets (``model(images, targets)``, a list of ``{'boxes', 'labels'}`` dicts) and returns a dict
of its losses (summed here); in eval mode it returns ``boxes``, ``scores`` and ``labels``, either
batched with a fixed number ``K`` per image (``(B, K, 4)``, ``(B, K)``, ``(B, K)``: traceable, so
prunable and exportable to ONNX) or per image (torchvision's list of dicts). mAP@0.5 and
mAP@0.5:0.95 are COCO's, computed by pycocotools (``pip install 'slimnas[tasks]'``), never by hand.

So that every stage (the training loop's index slices, the ONNX Runtime measurements, int8
calibration) handles detection as one tensor in, one tensor out, the targets are encoded as one
padded tensor ``(N, M, 5)`` (``x1, y1, x2, y2, label``; label ``-1`` pads) and a detector's
eval-mode answer is packed into ``(N, K, 6)`` (``x1, y1, x2, y2, score, label``) by
:class:`~slimnas.models._detector.DetectorModel`; a row whose score is not above 0 is padding.
:func:`target_list` and :func:`output_list` turn them back into per-image dicts."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch

from slimnas.errors import ConfigError
from slimnas.tasks._base import Meter, TargetError, Task, TaskMetric, register_task

EXPECTED = ("the detection task takes, per image, {'boxes': (n, 4) x1, y1, x2, y2 in pixels inside the image, "
            "'labels': (n,) class ids >= 0}")


#: detections per image kept from a per-image (torchvision-style) answer: COCO's ``maxDets``
MAX_DETECTIONS = 100


def target_list(y) -> list[dict[str, torch.Tensor]]:
    """Per-image ``{'boxes': (n, 4), 'labels': (n,)}`` of encoded targets (the padded
    ``(N, M, 5)`` tensor, padding dropped) or of such a list already."""
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
        return [{"boxes": t[t[:, 4] >= 0, :4], "labels": t[t[:, 4] >= 0, 4].long()} for t in y]
    return [{"boxes": torch.as_tensor(t["boxes"]).reshape(-1, 4).float(), "labels": torch.as_tensor(t["labels"]).long()}
            for t in y]


def output_list(out) -> list[dict[str, torch.Tensor]]:
    """Per-image ``{'boxes', 'scores', 'labels'}`` of a detector's eval-mode answer: the packed
    ``(N, K, 6)`` tensor or batched dict (rows with a score not above 0 dropped as padding), or
    a per-image list of dicts (kept as it is)."""
    if isinstance(out, dict):
        out = pack_outputs(out)
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().float()
        if out.dim() != 3 or out.shape[-1] != 6:
            raise ConfigError("model", "a detector answering with boxes (N, K, 4), scores (N, K) and labels (N, K) "
                              "in eval mode", f"an output shaped {tuple(out.shape)}")
        return [{"boxes": o[o[:, 4] > 0, :4], "scores": o[o[:, 4] > 0, 4], "labels": o[o[:, 4] > 0, 5].round().long()}
                for o in out]
    return [{k: torch.as_tensor(d[k]).detach().cpu() for k in ("boxes", "scores", "labels")} for d in out]


def is_detections(out) -> bool:
    """Whether ``out`` is a detector's eval-mode answer: a dict with ``boxes``, ``scores`` and
    ``labels``, or a list of such dicts (one per image)."""
    keys = {"boxes", "scores", "labels"}
    if isinstance(out, dict):
        return keys <= set(out)
    return isinstance(out, (list, tuple)) and bool(out) and all(isinstance(d, dict) and keys <= set(d) for d in out)


def pack_outputs(out) -> torch.Tensor:
    """A detector's eval-mode answer as one ``(N, K, 6)`` tensor (``x1, y1, x2, y2, score,
    label``): batched ``(N, K, ...)`` tensors as they are (traceable: what is exported; rows of
    score 0 zeroed), a per-image list padded (zeros) or cut to :data:`MAX_DETECTIONS` by score."""
    if isinstance(out, dict):
        boxes, scores, labels = out["boxes"], out["scores"], out["labels"]
        if boxes.dim() != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2] or labels.shape != boxes.shape[:2]:
            raise ConfigError("model", "a detector answering with boxes (N, K, 4), scores (N, K) and labels (N, K) "
                              "in eval mode (or torchvision's list of per-image dicts)",
                              f"boxes {tuple(boxes.shape)}, scores {tuple(scores.shape)}, labels {tuple(labels.shape)}")
        packed = torch.cat([boxes.float(), scores.float()[..., None], labels.float()[..., None]], -1)
        # rows without a detection (score 0: fewer peaks than K) are zeros, whichever cell a runtime's
        # top-K picks among equal scores: eager and ONNX files answer alike
        return packed * (scores > 0).float()[..., None]
    rows = []
    for d in out:
        order = torch.argsort(d["scores"], descending=True)[:MAX_DETECTIONS]
        r = torch.cat([d["boxes"][order].float(), d["scores"][order].float()[:, None],
                       d["labels"][order].float()[:, None]], 1)
        rows.append(torch.cat([r, r.new_zeros(MAX_DETECTIONS - len(r), 6)]))
    return torch.stack(rows)


def coco_map(output: list[dict], target: list[dict]) -> dict[str, float]:
    """COCO's mAP@0.5 and mAP@0.5:0.95 of per-image predictions against targets, by pycocotools'
    own evaluation (``COCOeval``; what torchmetrics' MeanAveragePrecision calls too, without the
    torchvision it needs). Images without any box are counted; no prediction at all scores 0."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise ConfigError("task.detection", "pycocotools installed (pip install 'slimnas[tasks]')",
                          f"{type(e).__name__}: {e}") from None
    images, annotations, detections, classes = [], [], [], set()
    for i, (pred, true) in enumerate(zip(output, target, strict=True)):
        images.append({"id": i})
        for box, label in zip(true["boxes"].tolist(), true["labels"].tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label + 1,
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
            classes.add(label + 1)
        for box, score, label in zip(pred["boxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(),
                                     strict=True):
            detections.append({"image_id": i, "category_id": int(label) + 1, "score": score,
                               "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
            classes.add(int(label) + 1)
    if not detections or not annotations:
        return {"map50": 0.0, "map50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in sorted(classes)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(detections), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50": max(float(ev.stats[1]), 0.0), "map50_95": max(float(ev.stats[0]), 0.0)}


@register_task("detection")
class Detection(Task):
    """Boxes and their classes, any number per image (a torchvision-style detector)."""

    description = "object detection: the detector's own losses; COCO mAP@0.5 and mAP@0.5:0.95 (pycocotools)"
    metrics = (TaskMetric("map50", "maximize", "mAP@0.5", 0.0, 1.0, "COCO mean average precision at IoU 0.5"),
               TaskMetric("map50_95", "maximize", "mAP@0.5:0.95", 0.0, 1.0,
                          "COCO mean average precision over IoU 0.5 to 0.95"))
    primary = "map50"
    exports = "boxes (N, K, 4), scores (N, K) and labels (N, K); a score of 0 pads"
    #: the detector's losses are its own: no distillation term (``--distill`` fine-tunes on them)
    distills = False
    own_losses = True  # the losses need the detector's training mode and the targets
    example_input_shape = (3, 64, 64)

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> list[dict[str, np.ndarray]]:
        if not isinstance(y, (list, tuple)):
            raise TargetError(field, f"is a {type(y).__name__}; {EXPECTED}: a list with one dict per image")
        if n is not None and len(y) != n:
            raise TargetError(field, f"has {len(y)} targets for {n} images; {EXPECTED}")
        height, width = (input_shape[-2], input_shape[-1]) if input_shape is not None else (np.inf, np.inf)
        out = []
        for i, t in enumerate(y):
            where = f"{field}[{i}]"
            if not isinstance(t, dict) or not {"boxes", "labels"} <= set(t):
                raise TargetError(where, f"is not a dict with 'boxes' and 'labels'; {EXPECTED}")
            boxes = np.asarray(t["boxes"].cpu() if isinstance(t["boxes"], torch.Tensor) else t["boxes"])
            labels = np.asarray(t["labels"].cpu() if isinstance(t["labels"], torch.Tensor) else t["labels"])
            if boxes.size == 0:
                boxes = boxes.reshape(0, 4)
            if boxes.dtype.kind not in "iuf" or boxes.ndim != 2 or boxes.shape[1] != 4:
                raise TargetError(where, f"has boxes of shape {boxes.shape} and type {boxes.dtype}; {EXPECTED}")
            if labels.dtype.kind not in "iu" or labels.shape != (len(boxes),):
                raise TargetError(where, f"has labels of shape {labels.shape} and type {labels.dtype} for "
                                  f"{len(boxes)} boxes; {EXPECTED}")
            if not np.isfinite(boxes).all():
                raise TargetError(where, f"has NaN or infinite box coordinates; {EXPECTED}")
            if (labels < 0).any():
                raise TargetError(where, f"has a negative class id ({int(labels.min())}); {EXPECTED}")
            empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
            if empty.any():
                raise TargetError(where, f"has a box with x2 <= x1 or y2 <= y1 ({boxes[empty][0].tolist()}); {EXPECTED}")
            outside = (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
            if outside.any():
                raise TargetError(where, f"has a box outside the {width}x{height} image ({boxes[outside][0].tolist()}); "
                                  f"{EXPECTED}")
            out.append({"boxes": boxes.astype(np.float32), "labels": labels.astype(np.int64)})
        return out

    def encode(self, y) -> torch.Tensor:
        """One padded tensor ``(N, M, 5)``: per image its boxes and label, label ``-1`` where
        there is no box (``M``: the most boxes of an image, at least 1)."""
        m = max([len(t["labels"]) for t in y] + [1])
        out = torch.zeros(len(y), m, 5)
        out[:, :, 4] = -1
        for i, t in enumerate(y):
            k = len(t["labels"])
            out[i, :k, :4] = torch.as_tensor(np.asarray(t["boxes"], np.float32)).reshape(k, 4)
            out[i, :k, 4] = torch.as_tensor(np.asarray(t["labels"]), dtype=torch.float32)
        return out

    def train_output(self, model, x, y):
        """The detector's losses: ``model(images, targets)`` (in training mode)."""
        return model(x, [{k: v.to(x.device) for k, v in t.items()} for t in target_list(y)])

    def head_size(self, y) -> int:
        labels = [int(np.max(t["labels"])) for t in y if len(t["labels"])]
        return max(labels) + 1 if labels else 1

    def output_shape(self, head: int, input_shape: tuple[int, ...]) -> None:
        return None

    def loss(self, output, target) -> torch.Tensor:
        if not isinstance(output, dict) or not output or not all(isinstance(v, torch.Tensor) for v in output.values()):
            got = type(output).__name__
            raise ConfigError("model", "a detector that returns a dict of its loss tensors in training mode "
                              "(torchvision's convention)", got)
        return sum(v.sum() for v in output.values())

    def score(self, output, target) -> dict[str, float]:
        return coco_map(output_list(output), target_list(target))

    def meter(self) -> Meter:
        return DetectionMeter(self)

    def example_targets(self, n: int, seed: int) -> list[dict[str, np.ndarray]]:
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            k = 1 + i % 3
            xy = rng.uniform(0, 40, (k, 2))
            out.append({"boxes": np.concatenate([xy, xy + rng.uniform(8, 24, (k, 2))], 1),
                        "labels": rng.integers(0, 3, k)})
        return out

    def perfect_output(self, target, head: int) -> torch.Tensor:
        real = (target[:, :, 4:] >= 0).float()
        return torch.cat([target[:, :, :4], real, target[:, :, 4:].clamp(min=0)], -1)

    def random_output(self, target, head: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        n = len(target)
        xy = 40 * torch.rand(n, 3, 2, generator=gen)
        return torch.cat([xy, xy + 8 + 16 * torch.rand(n, 3, 2, generator=gen), 0.01 + torch.rand(n, 3, 1, generator=gen),
                          torch.randint(0, head, (n, 3, 1), generator=gen).float()], -1)

    def training_output(self, target, head: int, seed: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        return {"loss_classifier": torch.rand((), generator=gen).requires_grad_(),
                "loss_box_reg": torch.rand((), generator=gen).requires_grad_()}

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0)

        def changed(**kw):
            return [{**good[0], **kw}, *good[1:]]

        return {"a box outside the image": changed(boxes=np.array([[50.0, 50.0, 70.0, 60.0]]), labels=np.array([0])),
                "a box with x2 < x1": changed(boxes=np.array([[20.0, 5.0, 10.0, 9.0]]), labels=np.array([0])),
                "NaN box coordinates": changed(boxes=np.array([[np.nan, 5.0, 10.0, 9.0]]), labels=np.array([0])),
                "float labels": changed(labels=good[0]["labels"] + 0.5),
                "boxes of another shape": changed(boxes=good[0]["boxes"][:, :3]),
                "an array, not a list of dicts": np.zeros((n, 4))}


class DetectionMeter(Meter):
    """Held-out batches of a detector (its own answer, or packed): each batch packed into
    ``(N, K, 6)`` as it comes, so the batches join whatever form the detector answers in."""

    def update(self, output, target) -> None:
        super().update(output if isinstance(output, torch.Tensor) else pack_outputs(output), target)

