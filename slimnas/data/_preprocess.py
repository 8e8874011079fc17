"""What turns a source's raw samples into model inputs: the array layout, the standardisation
(statistics from the training split only), the layout the model takes, the tokenizer.

A :class:`Preprocessing` is saved with every run (``run.json``, key ``preprocessing``), so a
deployed model's inputs are prepared as its training data was:
``Preprocessing.from_dict(info["preprocessing"]).transform(raw_samples)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slimnas.errors import ConfigError

KINDS = ("tabular", "sequence", "image", "text")
#: input layout names, with the short names also accepted
INPUT_LAYOUTS = {"channels_first": "channels_first", "ncl": "channels_first", "nchw": "channels_first",
                 "channels_last": "channels_last", "nlc": "channels_last", "nhwc": "channels_last",
                 "no_channel": "no_channel", "nl": "no_channel", "nf": "no_channel", "nhw": "no_channel"}
NHWC_CHANNELS = (1, 3, 4)  # channel counts that give an (N, H, W, C) array away


def infer_kind(x: Any) -> str:
    """``text`` for strings, else by dimensions: ``(N, F)`` tabular, ``(N, C, L)`` sequence,
    4-D image."""
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if np.dtype(x.dtype).kind in "USO" and len(x.shape) == 1:
        return "text"
    return {2: "tabular", 3: "sequence", 4: "image"}.get(len(x.shape), "tabular")


def resolve_input_layout(value: str, kind: str) -> str:
    layout = INPUT_LAYOUTS.get(value.lower() if isinstance(value, str) else value)
    if layout is None:
        raise ConfigError("data.input_layout", f"one of {sorted(INPUT_LAYOUTS)}", value)
    if kind == "text" and layout != "channels_first":
        raise ConfigError("data.input_layout", "the default for text (token ids are shaped (N, L))", value)
    return layout


def check_layout(shape: tuple[int, ...], layout: str | None) -> str:
    """The layout of a 4-D array in a file (``nchw`` or ``nhwc``, any case). Said nothing, an
    array whose last axis is 1, 3 or 4 and smaller than the two before it is channels-last
    (:func:`assumed_layout` words the assumption); one that could be either is refused, not
    misread."""
    if layout is not None and len(shape) != 4:
        raise ConfigError("data.layout", "only for 4-D image arrays, (N, C, H, W) or (N, H, W, C)",
                          f"{layout} for data shaped {tuple(shape)}")
    if len(shape) != 4:
        return ""
    if layout is None:
        if assumed_layout(shape):
            return "nhwc"
        if shape[3] in NHWC_CHANNELS and shape[1] not in NHWC_CHANNELS:
            raise ConfigError("data.layout", f"nhwc for images shaped (N, H, W, C) like {tuple(shape)} (or nchw to "
                              f"read them as {shape[1]} channels)")
        return "nchw"
    return layout.lower()


def assumed_layout(shape: tuple[int, ...]) -> str:
    """What is said when a 4-D array without ``data.layout`` is read as channels-last (``""``
    when it is not): its last axis is 1, 3 or 4 channels and both axes before it are larger
    (an array whose second axis is 1, 3 or 4 stays channels-first, as it always was)."""
    if (len(shape) == 4 and shape[3] in NHWC_CHANNELS and shape[1] not in NHWC_CHANNELS
            and min(shape[1], shape[2]) > shape[3]):
        return (f"data.layout: assumed nhwc (channels last) for images shaped {tuple(shape)}; "
                "set data.layout: nchw if they are not")
    return ""


def channel_first_batch(x: np.ndarray, layout: str) -> np.ndarray:
    """Raw rows (as the file holds them) as ``(N, C, ...)``: features get a channel axis, NHWC
    images are transposed."""
    if x.ndim == 2:
        return x[:, None, :]
    if layout == "nhwc":
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def to_input_layout(x, layout: str):
    """Channel-first samples (numpy or torch) in the layout the model takes."""
    if layout == "channels_first":
        return x
    if layout == "channels_last":
        perm = (0, *range(2, x.ndim), 1)
        return x.transpose(perm) if isinstance(x, np.ndarray) else x.permute(perm)
    return x[:, 0]


def from_input_layout(x, layout: str):
    """Inverse of :func:`to_input_layout` (torch tensors)."""
    if layout == "channels_first":
        return x
    if layout == "channels_last":
        return x.movedim(-1, 1)
    return x.unsqueeze(1)


def input_shape_of(sample_shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """One channel-first sample's shape in the model's layout."""
    if layout == "channels_first":
        return tuple(sample_shape)
    if layout == "channels_last":
        return (*sample_shape[1:], sample_shape[0])
    return tuple(sample_shape[1:])


def check_no_channel(sample_shape: tuple[int, ...], layout: str) -> None:
    if layout == "no_channel" and sample_shape[0] != 1:
        raise ConfigError("data.input_layout", f"channels_first or channels_last for {sample_shape[0]} channels "
                          "(no_channel drops a single channel axis)", "no_channel")


def resolve_normalize(mode: str, kind: str, default: str) -> str:
    """``auto`` becomes the source's default; ``feature`` and ``channel`` are checked against the
    data's kind."""
    mode = default if mode == "auto" else mode
    if kind == "text" and mode not in ("none", "auto"):
        raise ConfigError("data.normalize", "none for text (token ids are not scaled)", mode)
    return "none" if kind == "text" else mode


def stats_axes(normalize: str, ndim: int) -> tuple[int, ...]:
    """Axes a channel-first batch ``(N, C, ...)`` is reduced over for each statistic."""
    if normalize == "feature":
        return (0,)
    if normalize == "channel":
        return (0, *range(2, ndim))
    return tuple(range(ndim))


class RunningStats:
    """Mean and standard deviation over chunks of rows, in float64 (for data read in parts)."""

    def __init__(self, normalize: str) -> None:
        self.normalize, self.n, self.total, self.squares = normalize, 0, None, None

    def add(self, chunk: np.ndarray) -> None:
        axes = stats_axes(self.normalize, chunk.ndim)
        # float64 sums without a float64 copy of the chunk (numpy casts in small buffers)
        s = chunk.sum(axis=axes, dtype=np.float64, keepdims=True)[0]
        q = np.square(chunk).sum(axis=axes, dtype=np.float64, keepdims=True)[0]
        self.total = s if self.total is None else self.total + s
        self.squares = q if self.squares is None else self.squares + q
        self.n += int(np.prod([chunk.shape[a] for a in axes]))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / max(self.n, 1)
        var = np.maximum(self.squares / max(self.n, 1) - mean * mean, 0.0)
        std = np.sqrt(var)
        return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def array_stats(x: np.ndarray, normalize: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature, per-channel or global mean and std of a channel-first training array (a zero
    std becomes 1: a constant feature is centred, not blown up), shaped to broadcast over a sample."""
    axes = stats_axes(normalize, x.ndim)
    mean = x.mean(axis=axes, dtype=np.float64, keepdims=True)[0]
    std = x.std(axis=axes, dtype=np.float64, keepdims=True)[0]
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Preprocessing:
    """How a source's raw samples became the model's inputs, in order: a tokenizer (text), the
    file's layout to channels first, ``(x - mean) / std``, the model's layout.

    Attributes:
        kind: ``tabular``, ``sequence``, ``image`` or ``text``.
        layout: a 4-D source's layout (``nchw``/``nhwc``), ``""`` otherwise.
        normalize: ``none``, ``global``, ``feature`` or ``channel``.
        mean, std: float32 arrays that broadcast over one channel-first sample (``None`` with
            ``normalize: none``); from the training split only.
        input_layout: ``channels_first``, ``channels_last`` or ``no_channel``.
        tokenizer: the fitted tokenizer's state (text).

    Example:
        >>> p = Preprocessing("tabular", normalize="feature", mean=np.array([[1., 10.]], np.float32),
        ...                   std=np.array([[2., 5.]], np.float32))
        >>> p.transform(np.array([[3., 20.]])).tolist()
        [[[1.0, 2.0]]]
    """

    kind: str
    layout: str = ""
    normalize: str = "none"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    input_layout: str = "channels_first"
    tokenizer: dict | None = None

    def transform(self, x) -> np.ndarray:
        """Raw samples (as the source holds them: texts, ``(N, F)``, ``(N, C, L)``, images in
        the file's layout) as model inputs."""
        if self.kind == "text":
            from slimnas.data._tokenizers import tokenizer_from_state

            return tokenizer_from_state(self.tokenizer or {"name": "word"}).encode(list(x))
        x = channel_first_batch(np.asarray(x, dtype=np.float32), self.layout)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(to_input_layout(x, self.input_layout))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "layout": self.layout, "normalize": self.normalize,
                               "input_layout": self.input_layout}
        if self.mean is not None and self.std is not None:
            out.update(mean=self.mean.tolist(), std=self.std.tolist())
        if self.tokenizer is not None:
            out["tokenizer"] = self.tokenizer
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        arr = (lambda v: None if v is None else np.asarray(v, dtype=np.float32))  # noqa: E731
        return cls(kind=d["kind"], layout=d.get("layout", ""), normalize=d.get("normalize", "none"),
                   mean=arr(d.get("mean")), std=arr(d.get("std")),
                   input_layout=d.get("input_layout", "channels_first"), tokenizer=d.get("tokenizer"))

    @property
    def is_identity(self) -> bool:
        """Whether inputs are the source's samples unchanged (MNIST-1D, digits)."""
        return self.kind != "text" and self.normalize == "none" and self.input_layout == "channels_first"
