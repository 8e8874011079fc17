"""Augmentation of training batches (never of validation or test data): random crops with
padding and horizontal flips for images, random shifts and Gaussian noise for sequences.

Applied by the trainer to each training batch, on the batch's device, with the training's own
random generator, so a seeded run is repeatable. Values are in standardised units (padding is
zero, the training mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from slimnas.data._preprocess import from_input_layout, to_input_layout
from slimnas.errors import ConfigError

#: option -> (kinds it applies to, what it expects, check)
OPTIONS = {
    "crop": (("image",), "padding in pixels, an integer >= 0", lambda v: _int(v) and v >= 0),
    "flip": (("image",), "true or false", lambda v: isinstance(v, bool)),
    "shift": (("sequence", "tabular"), "steps, an integer >= 0", lambda v: _int(v) and v >= 0),
    "noise": (("image", "sequence", "tabular"), "a standard deviation >= 0", lambda v: _num(v) and v >= 0),
}


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Augment:
    """A training-batch transform.

    Args:
        crop: images: pad every side by this many pixels, then crop back to the original size at
            a random place per sample (Krizhevsky et al. 2012's translation augmentation).
        flip: images: mirror half the samples left to right.
        shift: sequences: move every sample by a random number of steps in ``[-shift, shift]``
            along its last axis, zeros filling the gap.
        noise: add Gaussian noise of this standard deviation.
        layout: the layout batches come in (``channels_first``, ``channels_last``, ``no_channel``).

    Example:
        >>> aug = Augment(crop=2, flip=True)
        >>> aug(torch.zeros(4, 3, 8, 8), torch.Generator().manual_seed(0)).shape
        torch.Size([4, 3, 8, 8])
    """

    crop: int = 0
    flip: bool = False
    shift: int = 0
    noise: float = 0.0
    layout: str = "channels_first"

    @classmethod
    def from_config(cls, options: dict, kind: str, layout: str = "channels_first") -> Augment | None:
        """The ``data.augment`` mapping for data of ``kind``; ``None`` when it asks for nothing."""
        if not options:
            return None
        if kind == "text":
            raise ConfigError("data.augment", "nothing for text (augmentation is for images and sequences)", options)
        for key, value in options.items():
            if key not in OPTIONS:
                raise ConfigError(f"data.augment.{key}", f"one of {sorted(OPTIONS)}")
            kinds, expected, check = OPTIONS[key]
            if not check(value):
                raise ConfigError(f"data.augment.{key}", expected, value)
            if kind not in kinds and value:
                raise ConfigError(f"data.augment.{key}", f"{' or '.join(kinds)} data (this data is {kind})", value)
        aug = cls(**{k: v for k, v in options.items()}, layout=layout)
        return aug if aug.active else None

    @property
    def active(self) -> bool:
        return bool(self.crop or self.flip or self.shift or self.noise)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """A new, augmented batch (``x`` is left alone)."""
        x = from_input_layout(x, self.layout)
        n = x.shape[0]
        if self.crop:
            x = _random_crop(x, self.crop, gen)
        if self.flip:
            flipped = torch.rand(n, generator=gen).to(x.device) < 0.5
            x = torch.where(flipped.view(n, *([1] * (x.ndim - 1))), x.flip(-1), x)
        if self.shift:
            x = _random_shift(x, self.shift, gen)
        if self.noise:
            x = x + self.noise * torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
        return to_input_layout(x, self.layout)


def _random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` by ``pad`` and crop each sample back at its own random offset."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def _random_shift(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Move each sample of ``(N, C, L)`` by its own offset in ``[-shift, shift]`` along ``L``."""
    n, length = x.shape[0], x.shape[-1]
    padded = torch.nn.functional.pad(x, (shift, shift))
    start = torch.randint(0, 2 * shift + 1, (n,), generator=gen).to(x.device)
    idx = (start[:, None] + torch.arange(length, device=x.device)).view(n, *([1] * (x.ndim - 2)), length)
    return padded.gather(-1, idx.expand(*x.shape[:-1], length))
