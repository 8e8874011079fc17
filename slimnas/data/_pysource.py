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


def make_pysource(n: int = 2000, seq_len: int = 64) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{'train' | 'val' | 'test': (x, y)}``: ``x`` ``(m, seq_len)`` character ids, ``y`` the next
    character of each; ``n`` training windows, a fifth of that for validation and for test (fewer
    where the files run out). Windows are cut in file order, without overlap, at most a
    :data:`MIN_FILES`-th of a split's windows from one file."""
    root = Path(sysconfig.get_paths()["stdlib"])
    want = {"train": n, "val": max(1, n // 5), "test": max(1, n // 5)}
    windows: dict[str, list[np.ndarray]] = {k: [] for k in want}
    have = dict.fromkeys(want, 0)
    per_file = {k: -(-v // MIN_FILES) for k, v in want.items()}
    for path in stdlib_files():
        if all(have[k] >= want[k] for k in want):
            break
        split = split_of(path.relative_to(root).as_posix())
        if have[split] >= want[split]:
            continue
        try:
            ids = encode_text(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        m = min(len(ids) // (seq_len + 1), want[split] - have[split], per_file[split])
        if m > 0:
            windows[split].append(ids[: m * (seq_len + 1)].reshape(m, seq_len + 1))
            have[split] += m
    out = {}
    for k, parts in windows.items():
        if not parts:
            raise ValueError(f"the standard library at {root} holds no {k} text for the pysource corpus")
        w = np.concatenate(parts)
        out[k] = (w[:, :-1].copy(), w[:, 1:].copy())
    return out
