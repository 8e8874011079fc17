"""``boxes64``: a procedurally generated object detection set, 64x64 colour images.

Each image holds 1 to ``max_objects`` objects of four classes (disc, square, triangle, plus;
drawn by ``shapes32``'s own shape masks) at random places, sizes (radius 4 to 12 pixels) and
rotations, in random colours on a random background with a brightness gradient, unlabelled
distractors (rings, bars, ellipses: shapes that are not objects), objects that may overlap and
pixel noise. Each object's box is the tight box of its drawn pixels (``x1, y1, x2, y2``). Small
objects, overlaps, low contrast and distractors keep a small detector far from perfect.
Deterministic from a seed.
"""

from __future__ import annotations

import numpy as np

from slimnas.data._shapes import _mask, _rotated

SIZE = 64
#: the labelled classes: id -> the shapes32 shape drawn
CLASSES = ("disc", "square", "triangle", "plus")
_SHAPE = (0, 2, 4, 5)
#: unlabelled distractors: ring, bar, ellipse
_DISTRACTORS = (1, 6, 7)


def make_boxes(n: int = 512, seed: int = 0, max_objects: int = 4, noise: float = 0.08,
               distractors: int = 2) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """``n`` images ``(n, 3, 64, 64)`` float32 in [0, 1] and per image ``{'boxes': (k, 4) float32,
    'labels': (k,) int64}``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    images = np.empty((n, 3, SIZE, SIZE), np.float32)
    targets = []
    for i in range(n):
        bg = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        slope = rng.normal(0, 0.15, 2)
        img = bg[:, None, None] + (slope[0] * (xx - 32) / 64 + slope[1] * (yy - 32) / 64)[None]
        k = int(rng.integers(1, max_objects + 1))
        draws = [(int(c), True) for c in rng.integers(0, len(CLASSES), k)]
        draws += [(int(d), False) for d in rng.integers(0, len(_DISTRACTORS), int(rng.integers(0, distractors + 1)))]
        objects: list[tuple[int, np.ndarray]] = []  # (class, the part of it still visible)
        for j in rng.permutation(len(draws)):  # distractors may lie over objects and under them
            shape, labelled = draws[j]
            r = rng.uniform(4.0, 12.0) if labelled else rng.uniform(3.0, 8.0)
            cx, cy = rng.uniform(r + 1, SIZE - r - 1, 2)
            u, v = _rotated(xx, yy, np.array([cx]), np.array([cy]), np.array([rng.uniform(0, np.pi)]))
            mask = _mask(_SHAPE[shape] if labelled else _DISTRACTORS[shape], u, v, np.full((1, 1, 1), r),
                         np.full((1, 1, 1), max(1.0, r * 0.25)))[0]
            colour = np.clip(bg + rng.choice([-1, 1], 3) * rng.uniform(0.15, 0.6, 3), 0, 1).astype(np.float32)
            img = img * (1 - mask[None]) + colour[:, None, None] * mask[None]
            objects = [(c, m * (1 - mask)) for c, m in objects]  # what it is drawn over is covered
            if labelled:
                objects.append((shape, mask))
        kept = _visible(objects)
        img = img + rng.normal(0, noise, img.shape).astype(np.float32)
        images[i] = np.clip(img, 0, 1)
        targets.append({"boxes": np.array([b for b, _ in kept], np.float32).reshape(-1, 4),
                        "labels": np.array([c for _, c in kept], np.int64)})
    return images, targets


def _visible(objects: list[tuple[int, np.ndarray]]) -> list[tuple[list[float], int]]:
    """``(box, class)`` of each object with enough of it left visible (the tight box of its pixels)."""
    out = []
    for cls, m in objects:
        ys, xs = np.nonzero(m > 0.5)
        if len(xs) >= 6:  # covered by later shapes: no longer an object to find
            out.append(([float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)], cls))
    return out
