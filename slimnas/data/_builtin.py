"""Built-in datasets, generated or shipped: nothing is downloaded."""

from __future__ import annotations

import functools

import numpy as np

from slimnas.data._registry import register_dataset


@register_dataset("mnist1d")
@functools.cache
def mnist1d() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020), generated offline: 4000 train and 1000 test sequences of 40."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return d["x"], d["y"], d["x_test"], d["y_test"]


@register_dataset("digits")
@functools.cache
def digits() -> tuple[np.ndarray, np.ndarray, None, None]:
    """scikit-learn's bundled 8x8 digits (1797 images), scaled to [0, 1], as ``(N, 1, 8, 8)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0)[:, None].astype(np.float32), d.target, None, None
