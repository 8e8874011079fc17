"""Built-in datasets, generated or shipped: nothing is downloaded.

Names are stable (configs and saved runs refer to them):

- ``mnist1d``: MNIST-1D sequences ``(1, 40)``, as the source scales them;
- ``digits``: scikit-learn's 8x8 digits ``(1, 8, 8)``, scaled to [0, 1] and nothing more;
- ``digits-images``: the same images standardised per channel, augmentable as images;
- ``shapes32``: procedurally generated 32x32 colour shapes ``(3, 32, 32)``, 10 classes;
- ``text``: procedurally generated review sentences, 8 classes, tokenised (``(L,)`` token ids);
- ``wine``, ``breast-cancer``: scikit-learn's tabular sets, standardised per feature.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from slimnas.config._schema import MAX_SEED
from slimnas.data._registry import register_dataset
from slimnas.data._shapes import make_shapes
from slimnas.data._textgen import make_text


@register_dataset("mnist1d", kind="sequence")
@functools.cache
def mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020), generated offline: 4000 train and 1000 test sequences of 40."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return d["x"], d["y"], d["x_test"], d["y_test"]


@functools.cache
def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0)[:, None].astype(np.float32), d.target


@register_dataset("digits", kind="image")
def digits() -> tuple[np.ndarray, np.ndarray, None, None]:
    """scikit-learn's bundled 8x8 digits (1797 images), scaled to [0, 1], as ``(N, 1, 8, 8)``."""
    x, y = _digit_images()
    return x, y, None, None


@register_dataset("digits-images", kind="image", normalize="channel")
def digits_images() -> tuple[np.ndarray, np.ndarray, None, None]:
    """scikit-learn's 8x8 digits as ``(N, 1, 8, 8)`` images, standardised per channel with the
    training split's statistics (``data.augment`` crops and flips apply)."""
    x, y = _digit_images()
    return x, y, None, None


@register_dataset("shapes32", kind="image", normalize="channel")
def shapes32(n: int = 6000, seed: int = 0, noise: float = 0.12, distractors: int = 3):
    """Procedurally generated 32x32 colour images of 10 shape classes with random placement,
    size, rotation and colours, distractor shapes, lighting and noise (``slimnas.data._shapes``).

    Options (``data.options``): ``n`` images, ``seed``, ``noise``, ``distractors``.
    """
    _check_options("shapes32", n=n, seed=seed, noise=noise, distractors=distractors)
    x, y = _cached(make_shapes, n, seed=seed, noise=noise, distractors=distractors)
    return x, y, None, None


@register_dataset("text", kind="text")
def text(n: int = 6000, seed: int = 0, label_noise: float = 0.02):
    """Procedurally generated review sentences, 4 topics x positive/negative, with negation and
    contrast clauses that word counts alone cannot resolve (``slimnas.data._textgen``).

    Options (``data.options``): ``n`` sentences, ``seed``, ``label_noise``.
    """
    _check_options("text", n=n, seed=seed, label_noise=label_noise)
    x, y = _cached(make_text, n, seed=seed, label_noise=label_noise)
    return x, y, None, None


@register_dataset("wine", kind="tabular", normalize="feature")
def wine():
    """scikit-learn's wine data: 178 samples, 13 features of very different scales, 3 classes."""
    from sklearn.datasets import load_wine

    d = load_wine()
    return d.data.astype(np.float32), d.target, None, None


@register_dataset("breast-cancer", kind="tabular", normalize="feature")
def breast_cancer():
    """scikit-learn's breast cancer data: 569 samples, 30 features, 2 classes."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return d.data.astype(np.float32), d.target, None, None


@functools.lru_cache(maxsize=4)
def _cached(make, *args, **kwargs):
    """A generator's output, made once per process and options (searches load data often)."""
    return make(*args, **kwargs)


#: the options of the generated datasets: (kind, low, high) per option; ``n`` per dataset, so a
#: generated set stays within memory (shapes32 holds 12 KiB per image, a text sentence far less)
OPTION_BOUNDS = {"seed": ("int", 0, MAX_SEED), "distractors": ("int", 0, 100), "noise": ("num", 0, 10),
                 "label_noise": ("num", 0, 1)}
MAX_N = {"shapes32": 100_000, "text": 1_000_000}


def _check_options(dataset: str, **values) -> None:
    """Each option of a generated dataset within its bounds, else a one-line ConfigError naming it
    (``data.options.n: expected an integer in 10..100,000, ...``)."""
    from slimnas.errors import ConfigError

    for key, value in values.items():
        kind, low, high = ("int", 10, MAX_N[dataset]) if key == "n" else OPTION_BOUNDS[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and (isinstance(value, int) if kind == "int" else math.isfinite(value))
        if not ok or not low <= value <= high:
            what = f"an integer in {low}..{high:,}" if kind == "int" else f"a finite number in [{low}, {high}]"
            raise ConfigError(f"data.options.{key}", what, value)
