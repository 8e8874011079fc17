"""Data file formats: a registry of readers by file suffix (``.npz``, ``.csv``, and the next
ones) or by what a folder holds (a folder of images per class, a folder of ``.npy`` files)."""

from __future__ import annotations

import abc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from slimnas.data._stream import RowFile
from slimnas.errors import ConfigError
from slimnas.registry import Registry

#: ``(x, y, x_test, y_test)``: arrays; the test pair may be ``None`` (then it is carved out)
RawData = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


class BaseFormat(abc.ABC):
    """Reads one kind of data file (or folder) into arrays.

    Call order: :func:`load_dataset` picks the format by the file's suffix (or, for a folder,
    the first format whose :meth:`matches` says yes) and calls :meth:`read` with the data
    options its signature names (``label_column``, ``text_column``, the ``data.options``);
    the arrays then go through the same checks and splits as every dataset. Formats that set
    :attr:`streams` also give :meth:`read_rows`, for data read from disk per batch.
    """

    name: ClassVar[str] = ""
    #: file suffixes this format reads, with the dot (``(".npz",)``); empty for folder formats
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: inputs from files are standardised with training statistics unless this says otherwise
    #: (``data.normalize: auto`` then scales features one by one, and images per channel)
    standardize: ClassVar[bool] = True
    #: the kind of samples the conformance check writes: ``tabular`` (N, F) or ``image`` (N, C, H, W)
    example: ClassVar[str] = "tabular"
    #: also reads texts (a column of strings), which the conformance check then round-trips
    reads_text: ClassVar[bool] = False
    #: gives :meth:`read_rows` (``data.stream``)
    streams: ClassVar[bool] = False

    @classmethod
    def matches(cls, path: Path) -> bool:
        """Whether this format reads ``path`` (by default: by its suffix)."""
        return path.suffix.lower() in cls.suffixes

    @abc.abstractmethod
    def read(self, path: Path, *, label_column: str = "label") -> RawData:
        """The file's arrays; raise :class:`ConfigError` (field ``data.dataset``) on a bad file."""

    def read_rows(self, path: Path, *, label_column: str = "label") -> RawData:
        """Like :meth:`read`, with ``x`` and ``x_test`` as :class:`RowFile` s left on disk."""
        raise NotImplementedError(f"the {self.name!r} format cannot stream")

    def write(self, path: Path, x: np.ndarray, y: np.ndarray, *, label_column: str = "label") -> None:
        """Write arrays :meth:`read` reads back (for tests and conversions; optional)."""
        raise NotImplementedError(f"the {self.name!r} format cannot write files")


FORMATS: Registry[type[BaseFormat]] = Registry("data.format")


def register_format(name: str) -> Callable[[type[BaseFormat]], type[BaseFormat]]:
    """Class decorator: register a :class:`BaseFormat` for its ``suffixes``."""

    return FORMATS.register_class(name)


def format_for(path: Path) -> BaseFormat | None:
    """The registered format that reads ``path`` (by suffix; a folder by its content), if any."""
    for name in FORMATS.names():
        cls = FORMATS.get(name)
        if cls.suffixes and cls.matches(path):
            return cls()
    if path.is_dir():
        for name in FORMATS.names():
            cls = FORMATS.get(name)
            if not cls.suffixes and cls.matches(path):
                return cls()
    return None


def file_suffixes() -> list[str]:
    return sorted(s for n in FORMATS.names() for s in FORMATS.get(n).suffixes)


def folder_formats() -> list[str]:
    return [n for n in FORMATS.names() if not FORMATS.get(n).suffixes]


@register_format("npz")
class NpzFormat(BaseFormat):
    """NumPy archives with arrays ``x`` and ``y`` (and optionally ``x_test``, ``y_test``); never
    unpickled."""

    suffixes = (".npz",)
    streams = True

    def read_rows(self, path, *, label_column="label"):
        _, y, _, y_test = self._open(path, ("y", "y_test"))
        with zipfile.ZipFile(path) as z:
            has_test = "x_test.npy" in z.namelist()
        x = RowFile.of_npz(path, "x")
        x_test = RowFile.of_npz(path, "x_test") if has_test else None
        if len(x) != len(y):
            raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
        return x, y, x_test, y_test

    def read(self, path, *, label_column="label"):
        return self._open(path, ("x", "y", "x_test", "y_test"))

    def _open(self, path, members):
        try:
            f = np.load(path, allow_pickle=False)
            if not hasattr(f, "files"):  # a plain .npy array saved under .npz
                raise ValueError("a single array, not an archive")
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ConfigError("data.dataset", "a .npz archive of numeric arrays", f"{path}: {e}") from None
        with f:
            keys = set(f.files)
            if not {"x", "y"} <= keys:
                raise ConfigError("data.dataset", "a .npz with arrays 'x' and 'y'", f"{path} with {sorted(keys)}")
            try:
                x, y, x_test, y_test = (f[k] if k in keys and k in members else None
                                        for k in ("x", "y", "x_test", "y_test"))
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays would need pickle
                raise ConfigError("data.dataset", "numeric arrays (no pickled objects)", f"{path}: {e}") from None
        for name, array in (("x", x), ("y", y), ("x_test", x_test), ("y_test", y_test)):
            if array is not None and array.ndim == 0:
                raise ConfigError("data.dataset", "arrays of one row per sample: x shaped (N, ...), y shaped (N,)",
                                  f"{path}: {name} is a single value (a 0-d array)")
        if x is None:
            return x, y, x_test, y_test
        if len(x) != len(y):
            raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
        return x, y, x_test, y_test

    def write(self, path, x, y, *, label_column="label"):
        np.savez(path, x=x, y=y)


@register_format("csv")
class CsvFormat(BaseFormat):
    """A header row, numeric feature columns and a label column (``data.label_column``), read
    with pandas; or a text column (``data.text_column``, or the only column besides the label,
    when it holds text) and a label column, tokenised later (``data.tokenizer``)."""

    suffixes = (".csv",)
    reads_text = True

    def read(self, path, *, label_column="label", text_column=None):
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise ConfigError("data.dataset", "a .csv with a header and data rows", f"{path}: {e}") from None
        if frame.empty:
            raise ConfigError("data.dataset", "a .csv with a header and data rows", str(path))
        # several target columns (a regression of several values, multi-label 0/1 columns): "a,b,c"
        names = [label_column] if label_column in frame.columns else [c.strip() for c in label_column.split(",")]
        if any(c not in frame.columns for c in names):
            columns = list(frame.columns)
            raise ConfigError("data.label_column", f"a column of {path.name}, or several joined by commas (it has "
                              f"{len(columns)}: {columns}; set data.label_column or --label-column)", label_column)
        features = frame.drop(columns=names)
        labels = frame[names[0]] if len(names) == 1 else frame[names]
        empty = labels.isna().to_numpy().reshape(len(frame), -1).any(axis=1)
        if empty.any():
            raise ConfigError("data.dataset", "a label in every row of the label column", f"{path}: column "
                              f"{label_column!r} is empty in {int(empty.sum())} rows (first: data row "
                              f"{int(np.flatnonzero(empty)[0]) + 1})")
        if len(names) > 1:
            bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
            if bad:
                raise ConfigError("data.label_column", "numeric columns where several hold the targets", bad[0])
            y = labels.to_numpy(dtype=np.float32)
        else:
            y = labels.to_numpy() if pd.api.types.is_numeric_dtype(labels) else labels.astype(str).to_numpy(dtype=str)
        if text_column is not None:
            if text_column not in features.columns:
                raise ConfigError("data.text_column", f"a column of {path.name} besides the label (it has "
                                  f"{list(features.columns)})", text_column)
            return _texts(features[text_column], path), y, None, None
        if len(features.columns) == 1 and _mostly_text(features.iloc[:, 0]):
            return _texts(features.iloc[:, 0], path), y, None, None
        bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        if bad:
            raise ConfigError("data.dataset", f"numeric feature columns (not {bad[:5]}; a text column is "
                              "named by data.text_column)", str(path))
        return features.to_numpy(dtype=np.float32), y, None, None

    def write(self, path, x, y, *, label_column="label"):
        import pandas as pd

        if np.asarray(x).dtype.kind in "USO":
            pd.DataFrame({"text": np.asarray(x).astype(str), label_column: y}).to_csv(path, index=False)
            return
        frame = pd.DataFrame(np.asarray(x).reshape(len(x), -1), columns=[f"f{i}" for i in range(int(np.prod(x.shape[1:])))])
        frame[label_column] = y
        frame.to_csv(path, index=False)


def _mostly_text(column) -> bool:
    """A column of texts, not numbers with a stray word (those stay an error about numbers)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return False
    return bool(pd.to_numeric(column, errors="coerce").notna().mean() < 0.5)


def _texts(column, path: Path) -> np.ndarray:
    """A column of texts as strings (an empty field is an empty text)."""
    return column.fillna("").astype(str).to_numpy(dtype=str)
