"""Built-in datasets, generated or shipped: nothing is downloaded.

Names are stable (configs and saved runs refer to them):

- ``mnist1d``: MNIST-1D sequences ``(1, 40)``, as the source scales them;
- ``digits``: scikit-learn's 8x8 digits ``(1, 8, 8)``, scaled to [0, 1] and nothing more;
- ``digits-images``: the same images standardised per channel, augmentable as images;
- ``shapes32``: procedurally generated 32x32 colour shapes ``(3, 32, 32)``, 10 classes;
- ``text``: procedurally generated review sentences, 8 classes, tokenised (``(L,)`` token ids);
- ``wine``, ``breast-cancer``: scikit-learn's tabular sets, standardised per feature.

For the other tasks (``slimnas.tasks``; searched and compressed as their task says):

- ``diabetes``: scikit-learn's diabetes regression set (10 features, one target);
- ``digits-multilabel``: the digits with 6 attributes of each digit as labels (multi-label);
- ``pysource``: a character-level corpus of the Python standard library's source (language
  modelling), split by file;
- ``pysource-tags``: the same source, each character tagged by its lexical class (sequence
  labelling), split by file;
- ``boxes64``: procedurally generated 64x64 images of boxed objects (detection).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from slimnas.config._schema import MAX_SEED
from slimnas.data._boxes import make_boxes
from slimnas.data._pysource import make_pysource
from slimnas.data._pytags import make_pysource_tags
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
                 "label_noise": ("num", 0, 1), "seq_len": ("int", 8, 4096), "max_objects": ("int", 1, 20)}
MAX_N = {"shapes32": 100_000, "text": 1_000_000, "pysource": 1_000_000, "pysource-tags": 1_000_000, "boxes64": 100_000}


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


# -- datasets of the other tasks (slimnas.tasks): each loader returns its three splits,
# {'train' | 'val' | 'test': (x, y)}, split deterministically; search and compress do not take
# them yet (load_dataset says so in one line), load_task_dataset reads them.

def _three_splits(x, y, seed: int, val: float = 0.2, test: float = 0.2) -> dict[str, tuple]:
    """A seeded random split of ``(x, y)`` (``y`` an array or a list) into train, val and test."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test, n_val = int(round(test * len(x))), int(round(val * len(x)))
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    pick = (lambda a, idx: a[idx]) if isinstance(y, np.ndarray) else (lambda a, idx: [a[i] for i in idx])
    return {k: (x[np.sort(idx)], pick(y, np.sort(idx))) for k, idx in parts.items()}


@register_dataset("diabetes", kind="tabular", normalize="feature", task="regression")
def diabetes(seed: int = 0):
    """scikit-learn's diabetes data (bundled): 442 patients, 10 features, a disease-progression
    score one year on (25..346) to predict; 60/20/20 split by ``seed``."""
    from sklearn.datasets import load_diabetes

    _check_options("diabetes", seed=seed)
    x, y = load_diabetes(return_X_y=True)
    return _three_splits(x.astype(np.float32), y.astype(np.float32), seed)


#: digits-multilabel's labels: attribute -> the digits that have it
DIGIT_ATTRIBUTES = {"even": (0, 2, 4, 6, 8), "large": (5, 6, 7, 8, 9), "prime": (2, 3, 5, 7),
                    "loop": (0, 6, 8, 9), "square": (0, 1, 4, 9), "curved": (0, 2, 3, 5, 6, 8, 9)}


@register_dataset("digits-multilabel", kind="image", task="multilabel")
def digits_multilabel(seed: int = 0):
    """scikit-learn's 8x8 digits with, per image, the attributes of its digit as labels (even,
    5 or more, prime, has a loop, a square number, drawn with curves: ``DIGIT_ATTRIBUTES``), a
    ``(N, 6)`` 0/1 matrix; 60/20/20 split by ``seed``."""
    _check_options("digits-multilabel", seed=seed)
    x, digit = _digit_images()
    y = np.stack([np.isin(digit, members) for members in DIGIT_ATTRIBUTES.values()], 1).astype(np.float32)
    return _three_splits(x, y, seed)


@register_dataset("pysource", kind="text", task="lm")
def pysource(n: int = 2000, seq_len: int = 64):
    """A character-level corpus of the Python standard library's own source, split by file into
    train, val and test (``slimnas.data._pysource``): ``(N, seq_len)`` character ids and the next
    character at each position; ``n`` training windows, a fifth of that each for val and test."""
    _check_options("pysource", n=n, seq_len=seq_len)
    return _cached(make_pysource, n, seq_len)


@register_dataset("pysource-tags", kind="text", task="tokens")
def pysource_tags(n: int = 2000, seq_len: int = 64):
    """The Python standard library's own source, each character tagged by the lexical class of
    what it belongs to (keyword, builtin, name, definition, number, string, comment, operator,
    space, newline: ``slimnas.data._pytags``), split by file into train, val and test:
    ``(N, seq_len)`` character ids and their tags; ``n`` training windows, a fifth of that each
    for val and test (fewer where the files run out)."""
    _check_options("pysource-tags", n=n, seq_len=seq_len)
    return _cached(make_pysource_tags, n, seq_len)


@register_dataset("boxes64", kind="image", task="detection")
def boxes64(n: int = 512, seed: int = 0, max_objects: int = 4, noise: float = 0.08, distractors: int = 2):
    """Procedurally generated 64x64 colour images with 1 to ``max_objects`` boxed objects of 4
    classes among unlabelled distractors (``slimnas.data._boxes``); 60/20/20 split."""
    _check_options("boxes64", n=n, seed=seed, max_objects=max_objects, noise=noise, distractors=distractors)
    x, y = _cached(make_boxes, n, seed=seed, max_objects=max_objects, noise=noise, distractors=distractors)
    return _three_splits(x, y, seed)
