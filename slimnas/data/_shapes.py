"""``shapes32``: a procedurally generated 32x32 colour image classification task.

Ten classes of shapes, each drawn at a random place, size and rotation, in a random colour on a
random background, with smaller distractor shapes, a brightness gradient and pixel noise on top.
Some classes differ only in a detail (a ring and a disc, a filled and an outlined square, a bar
and an ellipse), and distractors can resemble parts of other classes, so a small CNN learns it
well but stays clearly below 100%. Generated in vectorised NumPy from a seed: the same seed
gives the same images, a few thousand in about a second.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("disc", "ring", "square", "square-outline", "triangle", "plus", "bar", "ellipse", "two-dots", "stripes")
SIZE = 32


def _rotated(xx, yy, cx, cy, theta):
    """Coordinates relative to each sample's centre, rotated by its angle: ``(N, H, W)`` each."""
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    return c * dx + s * dy, -s * dx + c * dy


def _mask(label: int, u, v, r, w):
    """Soft-edged coverage (0-1) of class ``label``'s shape, for rotated coordinates ``u, v``,
    radius ``r`` and stroke width ``w`` (``(N, 1, 1)`` each)."""
    edge = 0.6  # pixels of anti-aliased edge

    def inside(d):  # signed distance (negative inside) to coverage
        return np.clip(0.5 - d / edge, 0.0, 1.0)

    dist = np.sqrt(u * u + v * v)
    if label == 0:  # disc
        return inside(dist - r)
    if label == 1:  # ring
        return inside(np.abs(dist - r * 0.8) - w)
    box = np.maximum(np.abs(u), np.abs(v))
    if label == 2:  # square
        return inside(box - r * 0.8)
    if label == 3:  # square outline
        return inside(np.abs(box - r * 0.75) - w)
    if label == 4:  # triangle: three half-planes
        d = np.maximum.reduce([v - r * 0.5, -0.866 * u - 0.5 * v - r * 0.5, 0.866 * u - 0.5 * v - r * 0.5])
        return inside(d)
    if label == 5:  # plus
        return np.maximum(inside(np.maximum(np.abs(u) - w, np.abs(v) - r)), inside(np.maximum(np.abs(v) - w, np.abs(u) - r)))
    if label == 6:  # bar: long and thin
        return inside(np.maximum(np.abs(u) - r, np.abs(v) - w))
    if label == 7:  # ellipse: half as wide as long
        return inside(np.sqrt((u / r) ** 2 + (v / (0.5 * r)) ** 2) * r - r)
    if label == 8:  # two dots
        small = r * 0.38
        return np.maximum(inside(np.sqrt((u - r * 0.55) ** 2 + v * v) - small),
                          inside(np.sqrt((u + r * 0.55) ** 2 + v * v) - small))
    # stripes: a grating inside a disc
    return inside(dist - r) * (np.sin(u * np.pi / np.maximum(w, 1.0)) > 0)


def make_shapes(n: int = 6000, seed: int = 0, noise: float = 0.12, distractors: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images ``(n, 3, 32, 32)`` float32 in [0, 1] and their labels (balanced, shuffled).

    Args:
        n: number of images.
        seed: the generator's seed.
        noise: standard deviation of the pixel noise.
        distractors: at most this many small distractor shapes per image.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    r = rng.uniform(4.5, 10.0, n).astype(np.float32)
    w = rng.uniform(1.0, 2.2, n).astype(np.float32)
    margin = r * 0.7
    cx = rng.uniform(margin, SIZE - margin).astype(np.float32)
    cy = rng.uniform(margin, SIZE - margin).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    u, v = _rotated(xx, yy, cx, cy, theta)
    shape = np.zeros((n, SIZE, SIZE), np.float32)
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        if len(idx):
            shape[idx] = _mask(c, u[idx], v[idx], r[idx, None, None], w[idx, None, None])
    # colours: a background and a foreground at least a little apart, jittered per channel
    background = rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32)
    foreground = rng.uniform(0.0, 1.0, (n, 3)).astype(np.float32)
    close = np.abs(foreground - background).sum(1) < 0.6
    foreground[close] = 1.0 - background[close]
    img = background[:, :, None, None] * (1 - shape[:, None]) + foreground[:, :, None, None] * shape[:, None]
    # distractors: small discs, bars and rings of other colours, anywhere
    n_distract = rng.integers(0, distractors + 1, n)
    for k in range(distractors):
        idx = np.flatnonzero(n_distract > k)
        if not len(idx):
            continue
        m = len(idx)
        kind = rng.choice([0, 1, 6], m)
        dr = rng.uniform(1.5, 3.5, m).astype(np.float32)
        du, dv = _rotated(xx, yy, rng.uniform(0, SIZE, m).astype(np.float32), rng.uniform(0, SIZE, m).astype(np.float32),
                          rng.uniform(0, 2 * np.pi, m).astype(np.float32))
        cover = np.zeros((m, SIZE, SIZE), np.float32)
        for kd in (0, 1, 6):
            j = np.flatnonzero(kind == kd)
            if len(j):
                cover[j] = _mask(kd, du[j], dv[j], dr[j, None, None], np.full((len(j), 1, 1), 0.8, np.float32))
        colour = rng.uniform(0.0, 1.0, (m, 3, 1, 1)).astype(np.float32)
        img[idx] = img[idx] * (1 - cover[:, None]) + colour * cover[:, None]
    # lighting: a random linear gradient, then pixel noise
    gx, gy = rng.uniform(-0.25, 0.25, (2, n, 1, 1)).astype(np.float32)
    light = gx * (xx[None] / SIZE - 0.5) + gy * (yy[None] / SIZE - 0.5)
    img += light[:, None]
    img += noise * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img), labels.astype(np.int64)
