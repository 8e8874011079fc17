"""``run.json``: what a saved model takes and gives (input shape, class count), and what
rebuilds its architecture and data, written next to the weights of every run slimnas makes so
a model is rebuilt without loading the data (:func:`slimnas.load`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

INFO = "run.json"


def write_run_info(folder: str | Path, input_shape: Sequence[int], n_classes: int, **extra) -> None:
    """Write ``run.json`` (atomically); ``extra`` adds ``data`` (:func:`slimnas.data.load_dataset`'s
    arguments) and, for ``compress``, ``model`` (the ``file.py:callable`` that builds the original)."""
    path = Path(folder) / INFO
    tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"input_shape": list(input_shape), "n_classes": int(n_classes), **extra}, indent=2))
    os.replace(tmp, path)


def read_run_info(folder: str | Path) -> dict:
    """``run.json``'s content, or ``{}`` for folders written before it existed."""
    path = Path(folder) / INFO
    return json.loads(path.read_text()) if path.is_file() else {}
