"""Conformance of a registered data format: what it writes it reads back, and bad files of its
kind get one clear error."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from slimnas.data import FORMATS, load_dataset
from slimnas.errors import ConfigError


def _example(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "image":  # pixel values a lossless image file keeps exactly
        return rng.integers(0, 256, size=(60, 3, 8, 8)).astype(np.float32)
    return rng.normal(size=(60, 6)).astype(np.float32)


def _pairs(x, y, shape) -> list[tuple[str, bytes]]:
    """Samples with their labels, in an order of their own (a folder format may list them by
    class)."""
    x = np.asarray(x, dtype=np.float32).reshape(shape)
    return sorted(zip(np.asarray(y).astype(str).tolist(), (row.tobytes() for row in x), strict=True))


def _corrupt(path: Path, what: str, good: bytes | None) -> None:
    """Make ``path`` (a file, or a folder's first data file) empty, garbage or truncated."""
    target = path
    if path.is_dir():
        target = sorted(p for p in path.rglob("*") if p.is_file())[0]
        good = target.read_bytes()
    content = {"empty": b"", "not of the format": b"\x00\x01garbage\xff" * 50,
               "truncated": (good or b"")[: len(good or b"") // 2]}[what]
    target.write_bytes(content)


def check_data_format(name: str) -> dict:
    """Run every check on the format registered as ``name``; raises ``AssertionError`` naming
    the first that fails.

    1. Round trip: arrays written with the format's ``write`` come back equal from ``read``, and
       :func:`slimnas.data.load_dataset` splits them (every class in every split). A format that
       reads texts round-trips texts too; one that streams gives the same values from disk
       (``read_rows``, ``data.stream: true``) as in memory.
    2. Bad files get :class:`ConfigError`: empty, not of the format, truncated (for a folder
       format: its first data file so); a file whose labels sit under another column name is
       refused the same way or read.
    """
    fmt = FORMATS.get(name)()
    suffix = fmt.suffixes[0] if fmt.suffixes else ""
    rng = np.random.default_rng(0)
    x = _example(fmt.example, rng)
    y = np.arange(60) % 3
    refused = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        fmt.write(path, x, y)
        x2, y2, *_ = fmt.read(path)
        assert _pairs(x2, y2, x.shape) == _pairs(x, y, x.shape), f"{name}: samples or labels changed"
        splits = load_dataset(str(path))
        assert splits.n_classes == 3 and len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 60
        if fmt.streams:
            streamed = load_dataset(str(path), stream=True, num_workers=0)
            assert streamed.streamed, f"{name}: stream: true read the data into memory"
            assert np.allclose(streamed.x_val[:].numpy(), splits.x_val.numpy(), atol=1e-5), \
                f"{name}: samples read from disk differ from those read into memory"
        if fmt.reads_text:
            texts = np.array([f"sample {i} says {'yes' if i % 3 else 'no'}" for i in range(60)])
            text_path = Path(tmp) / f"texts{suffix}"
            fmt.write(text_path, texts, y)
            t2, ty, *_ = fmt.read(text_path)
            assert list(np.asarray(t2)) == list(texts) and np.array_equal(np.asarray(ty), y), f"{name}: texts changed"
            assert load_dataset(str(text_path)).kind == "text", f"{name}: texts were not read as text"
        good = None if path.is_dir() else path.read_bytes()
        for what in ("empty", "not of the format", "truncated"):
            bad = Path(tmp) / f"bad{suffix}"
            if path.is_dir():
                shutil.rmtree(bad, ignore_errors=True)
                shutil.copytree(path, bad)
            _corrupt(bad, what, good)
            try:
                load_dataset(str(bad))
            except ConfigError:
                refused.append(what)
                continue
            raise AssertionError(f"{name}: a {'folder whose data file is' if path.is_dir() else 'file that is'} "
                                 f"{what} was accepted")
        unlabeled = Path(tmp) / f"unlabeled{suffix}"
        fmt.write(unlabeled, x, y, label_column="target")
        try:  # formats with a label column refuse a file without it; the others read it
            load_dataset(str(unlabeled))
        except ConfigError:
            refused.append("no label column")
    return {"refused": refused}
