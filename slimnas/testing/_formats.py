"""Conformance of a registered data format: what it writes it reads back, and bad files of its
kind get one clear error."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from slimnas.data import FORMATS, load_dataset
from slimnas.errors import ConfigError


def check_data_format(name: str) -> dict:
    """Run every check on the format registered as ``name``; raises ``AssertionError`` naming
    the first that fails.

    1. Round trip: arrays written with the format's ``write`` come back equal from ``read``, and
       :func:`slimnas.data.load_dataset` splits them (every class in every split).
    2. Bad files get :class:`ConfigError`: empty, not of the format, truncated; a file whose
       labels sit under another column name is refused the same way or read.
    """
    fmt = FORMATS.get(name)()
    suffix = fmt.suffixes[0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6)).astype(np.float32)
    y = np.arange(60) % 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        fmt.write(path, x, y)
        x2, y2, *_ = fmt.read(path)
        assert np.array_equal(np.asarray(x2, dtype=np.float32).reshape(x.shape), x), f"{name}: features changed"
        assert np.array_equal(np.asarray(y2), y), f"{name}: labels changed"
        splits = load_dataset(str(path))
        assert splits.n_classes == 3 and len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 60
        good = path.read_bytes()
        bad_files = {"empty": b"", "not of the format": b"\x00\x01garbage\xff" * 50,
                     "truncated": good[: len(good) // 2]}
        refused = []
        for what, content in bad_files.items():
            bad = Path(tmp) / f"bad{suffix}"
            bad.write_bytes(content)
            try:
                load_dataset(str(bad))
            except ConfigError:
                refused.append(what)
                continue
            raise AssertionError(f"{name}: a file that is {what} was accepted")
        unlabeled = Path(tmp) / f"unlabeled{suffix}"
        fmt.write(unlabeled, x, y, label_column="target")
        try:  # formats with a label column refuse a file without it; the others read it
            load_dataset(str(unlabeled))
        except ConfigError:
            refused.append("no label column")
    return {"refused": refused}
