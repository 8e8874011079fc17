"""``run.json``: what a saved model takes and gives (input shape, class count), and what
rebuilds its architecture and data, written next to the weights of every run slimnas makes so
a model is rebuilt without loading the data (:func:`slimnas.load`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slimnas._files import read_json, write_json

INFO = "run.json"


def write_run_info(folder: str | Path, input_shape: Sequence[int], n_classes: int, **extra) -> None:
    """Write ``run.json`` (atomically); ``extra`` adds ``data`` (:func:`slimnas.data.load_dataset`'s
    arguments) and, for ``compress``, ``model`` (the ``file.py:callable`` that builds the original)."""
    write_json(Path(folder) / INFO, {"input_shape": list(input_shape), "n_classes": int(n_classes), **extra})


def read_run_info(folder: str | Path) -> dict:
    """``run.json``'s content, or ``{}`` for folders written before it existed."""
    path = Path(folder) / INFO
    if not path.is_file():
        return {}
    return read_json(path, "a JSON object with the model's input_shape (a list of sizes) and n_classes",
                     lambda d: isinstance(d, dict) and isinstance(d.get("data", {}), dict) and (("input_shape" not in d and "n_classes" not in d) or (
                         all(isinstance(n, int) and n > 0 for n in d["input_shape"]) and int(d["n_classes"]) > 0)))
