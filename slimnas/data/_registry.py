"""Dataset registry: built-in datasets by name, user files by path (read by their format)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from slimnas.data._base import DataSplits, make_splits
from slimnas.data._formats import file_suffixes, format_for
from slimnas.errors import ConfigError
from slimnas.registry import Registry

#: name -> loader(**options) returning raw arrays ``(x, y, x_test, y_test)``.
DATASETS: Registry[Callable] = Registry("data.dataset")


def register_dataset(name: str):
    """Register a loader returning ``(x, y, x_test, y_test)`` numpy arrays (test may be ``None``)."""
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(
    name: str,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    label_column: str = "label",
    standardize: bool | None = None,
) -> DataSplits:
    """Load a dataset by registered name or file path and split it.

    Args:
        name: a registered name (``mnist1d``, ``digits``) or a path to a file of a registered
            format (``.npz``, ``.csv``).
        val_fraction: share of the training data held out for validation (search decisions).
        test_fraction: share held out for test when the source has no test split.
        seed: seed of the splits (kept apart from the search seed so splits stay fixed).
        label_column: label column of a CSV file.
        standardize: scale inputs by the training mean/std; default on for files, off for
            built-ins (they come scaled).

    Example:
        >>> splits = load_dataset("digits")
        >>> splits.input_shape
        (1, 8, 8)
    """
    fmt = format_for(Path(name))
    if fmt is not None:
        if not Path(name).is_file():
            raise ConfigError("data.dataset", f"an existing {'/'.join(file_suffixes())} file", name)
        x, y, x_test, y_test = fmt.read(Path(name), label_column=label_column)
        standardize = fmt.standardize if standardize is None else standardize
    else:
        if name not in DATASETS:
            raise ConfigError("data.dataset", f"one of {list_datasets()} or a {'/'.join(file_suffixes())} file", name)
        x, y, x_test, y_test = DATASETS.get(name)()
        standardize = False if standardize is None else standardize
    try:
        return make_splits(
            name,
            x,
            y,
            x_test,
            y_test,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
            standardize=standardize,
        )
    except ValueError as e:
        raise ConfigError("data.dataset", "data to train, validate and test on", f"{name}: {e}") from None
