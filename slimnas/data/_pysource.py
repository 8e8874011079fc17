"""``pysource``: a character-level language-modelling corpus from text on every machine, the
Python standard library's own source files.

The ``.py`` files directly under the standard library folder and its packages (tests, ``idlelib``,
``site-packages`` and the like left out), sorted by path, are split **by file** into train,
validation and test (a stable hash of each file's relative path), so test text comes from files
the model never saw. Characters map to a fixed vocabulary (printable ASCII, newline; anything
else one "unknown" id), and each split is cut into windows of ``seq_len + 1`` characters: inputs
are the first ``seq_len``, targets the next character at each position. Deterministic for a
given Python version (its standard library's text).
"""

from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path

import numpy as np

#: id 0: a character outside the vocabulary; 1: newline; 2..96: printable ASCII 32..126
VOCAB = "\ufffd\n" + "".join(chr(c) for c in range(32, 127))
_LOOKUP = np.zeros(128, np.int64)  # ASCII code -> id (others: 0)
_LOOKUP[10] = 1
_LOOKUP[32:127] = np.arange(2, 97)
#: folders of the standard library that are not its ordinary source (``encodings``: mostly
#: generated codec tables)
SKIP = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo", "tkinter", "__pycache__",
        "ensurepip", "venv", "pydoc_data", "__phello__", "encodings"}
#: files that are not source: ``_sysconfigdata_*.py`` is the build's configuration, written when
#: Python was built (a dictionary of compiler flags and paths, different on every machine)
SKIP_FILES = ("_sysconfigdata",)
#: a split's windows come from at least this many files (where it has them): one long file
#: (``_pydecimal.py``) does not make most of a split
MIN_FILES = 16


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files this corpus reads, sorted by relative path."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py")
             if not any(part in SKIP or part.startswith("config-") for part in p.relative_to(root).parts[:-1])
             and not p.name.startswith(SKIP_FILES)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def split_of(relative: str, val_percent: int = 10, test_percent: int = 10) -> str:
    """``train``, ``val`` or ``test`` for a file, by a stable hash of its relative path."""
    bucket = zlib.crc32(relative.encode()) % 100
    return "test" if bucket < test_percent else "val" if bucket < test_percent + val_percent else "train"


def encode_text(text: str) -> np.ndarray:
    """Characters to ids of :data:`VOCAB`."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return np.where(codes < 128, _LOOKUP[np.minimum(codes, 127)], 0)


def file_windows(arrays, n: int, width: int, per_file: int | None = None,
                 min_files: int | None = None) -> dict[str, np.ndarray]:
    """``{'train' | 'val' | 'test': (m, k, width)}``: windows cut, in file order and without
    overlap, from each standard library file's ``(k, length)`` arrays (``arrays(text)``, ``None``
    to skip a file), the file's split deciding the window's; ``n`` training windows, a fifth of
    that for validation and for test (fewer where the files run out). ``per_file``: at most that
    many windows of a file, spread evenly through it (more files, each less of the corpus);
    ``min_files``: at most a ``min_files``-th of a split's windows from one file, its first ones."""
    root = Path(sysconfig.get_paths()["stdlib"])
    want = {"train": n, "val": max(1, n // 5), "test": max(1, n // 5)}
    windows: dict[str, list[np.ndarray]] = {k: [] for k in want}
    have = dict.fromkeys(want, 0)
    for path in stdlib_files():
        if all(have[k] >= want[k] for k in want):
            break
        split = split_of(path.relative_to(root).as_posix())
        if have[split] >= want[split]:
            continue
        try:
            a = arrays(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if a is None:
            continue
        total = a.shape[1] // width
        cap = -(-want[split] // min_files) if min_files else total
        m = min(total, want[split] - have[split], per_file or total, cap)
        if m > 0:
            w = a[:, : total * width].reshape(len(a), total, width).transpose(1, 0, 2)
            windows[split].append(w[:m] if m == total or per_file is None else
                                  w[np.linspace(0, total - 1, m).round().astype(int)])
            have[split] += m
    for k, parts in windows.items():
        if not parts:
            raise ValueError(f"the standard library at {root} holds no {k} text for the {arrays.__name__} corpus")
    return {k: np.concatenate(parts) for k, parts in windows.items()}


def pysource(text: str) -> np.ndarray:
    """A file's character ids, ``(1, length)``."""
    return encode_text(text)[None]


def make_pysource(n: int = 2000, seq_len: int = 64) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'train' | 'val' | 'test': (x, y)}``: ``x`` ``(m, seq_len)`` character ids, ``y`` the next
    character of each; ``n`` training windows, a fifth of that for validation and for test (fewer
    where the files run out). Windows are cut in file order, without overlap, at most a
    :data:`MIN_FILES`-th of a split's windows from one file."""
    windows = file_windows(pysource, n, seq_len + 1, min_files=MIN_FILES)
    return {k: (w[:, 0, :-1].copy(), w[:, 0, 1:].copy()) for k, w in windows.items()}
