"""User datasets from files: ``.npz`` with ``x``/``y`` (optionally ``x_test``/``y_test``), ``.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimnas.errors import ConfigError


def load_file(path: Path, *, label_column: str = "label"):
    if not path.is_file():
        raise ConfigError("data.dataset", "an existing .npz or .csv file", str(path))
    if path.suffix == ".npz":
        return _load_npz(path)
    return _load_csv(path, label_column)


def _load_npz(path: Path):
    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        if not {"x", "y"} <= keys:
            raise ConfigError("data.dataset", "a .npz with arrays 'x' and 'y'", f"{path} with {sorted(keys)}")
        x, y = f["x"], f["y"]
        x_test = f["x_test"] if "x_test" in keys else None
        y_test = f["y_test"] if "y_test" in keys else None
    if len(x) != len(y):
        raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
    return x, y, x_test, y_test


def _load_csv(path: Path, label_column: str):
    import csv

    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ConfigError("data.dataset", "a .csv with a header and data rows", str(path))
    header, body = rows[0], rows[1:]
    if label_column not in header:
        raise ConfigError("data.label_column", f"a column of {path.name} ({header[:8]})", label_column)
    col = header.index(label_column)
    try:
        x = np.array([[float(v) for i, v in enumerate(r) if i != col] for r in body], dtype=np.float32)
    except ValueError as e:
        raise ConfigError("data.dataset", "numeric feature columns", f"{path}: {e}") from None
    y = np.array([r[col] for r in body])
    return x, y, None, None
