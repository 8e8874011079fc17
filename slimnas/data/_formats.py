"""Data file formats: a registry of readers by file suffix (``.npz``, ``.csv``, and the next ones)."""

from __future__ import annotations

import abc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from slimnas.errors import ConfigError
from slimnas.registry import Registry

#: ``(x, y, x_test, y_test)``: arrays; the test pair may be ``None`` (then it is carved out)
RawData = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


class BaseFormat(abc.ABC):
    """Reads one kind of data file into arrays.

    Call order: :func:`load_dataset` picks the format by the file's suffix and calls
    :meth:`read` with the data options (``label_column``); the arrays then go through the
    same checks and splits as every dataset.
    """

    name: ClassVar[str] = ""
    #: file suffixes this format reads, with the dot (``(".npz",)``)
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: inputs from files are standardised with training statistics unless this says otherwise
    standardize: ClassVar[bool] = True

    @abc.abstractmethod
    def read(self, path: Path, *, label_column: str = "label") -> RawData:
        """The file's arrays; raise :class:`ConfigError` (field ``data.dataset``) on a bad file."""

    def write(self, path: Path, x: np.ndarray, y: np.ndarray, *, label_column: str = "label") -> None:
        """Write arrays :meth:`read` reads back (for tests and conversions; optional)."""
        raise NotImplementedError(f"the {self.name!r} format cannot write files")


FORMATS: Registry[type[BaseFormat]] = Registry("data.format")


def register_format(name: str) -> Callable[[type[BaseFormat]], type[BaseFormat]]:
    """Class decorator: register a :class:`BaseFormat` for its ``suffixes``."""

    def decorator(cls: type[BaseFormat]) -> type[BaseFormat]:
        cls.name = name
        FORMATS.register(name)(cls)
        return cls

    return decorator


def format_for(path: Path) -> BaseFormat | None:
    """The registered format that reads ``path``'s suffix, if any."""
    for name in FORMATS.names():
        cls = FORMATS.get(name)
        if path.suffix.lower() in cls.suffixes:
            return cls()
    return None


def file_suffixes() -> list[str]:
    return sorted(s for n in FORMATS.names() for s in FORMATS.get(n).suffixes)


@register_format("npz")
class NpzFormat(BaseFormat):
    """NumPy archives with arrays ``x`` and ``y`` (and optionally ``x_test``, ``y_test``); never
    unpickled."""

    suffixes = (".npz",)

    def read(self, path, *, label_column="label"):
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
                x, y = f["x"], f["y"]
                x_test = f["x_test"] if "x_test" in keys else None
                y_test = f["y_test"] if "y_test" in keys else None
            except ValueError as e:  # object arrays would need pickle
                raise ConfigError("data.dataset", "numeric arrays (no pickled objects)", f"{path}: {e}") from None
        if len(x) != len(y):
            raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
        return x, y, x_test, y_test

    def write(self, path, x, y, *, label_column="label"):
        np.savez(path, x=x, y=y)


@register_format("csv")
class CsvFormat(BaseFormat):
    """A header row, numeric feature columns and a label column (``data.label_column``), read
    with pandas."""

    suffixes = (".csv",)

    def read(self, path, *, label_column="label"):
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
            raise ConfigError("data.dataset", "a .csv with a header and data rows", f"{path}: {e}") from None
        if frame.empty:
            raise ConfigError("data.dataset", "a .csv with a header and data rows", str(path))
        if label_column not in frame.columns:
            columns = list(frame.columns)
            raise ConfigError("data.label_column", f"a column of {path.name} (it has {len(columns)}: {columns}; "
                              "set data.label_column or --label-column)", label_column)
        features = frame.drop(columns=[label_column])
        bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        if bad:
            raise ConfigError("data.dataset", f"numeric feature columns (not {bad[:5]})", str(path))
        labels = frame[label_column]
        y = labels.to_numpy() if pd.api.types.is_numeric_dtype(labels) else labels.astype(str).to_numpy(dtype=str)
        return features.to_numpy(dtype=np.float32), y, None, None

    def write(self, path, x, y, *, label_column="label"):
        import pandas as pd

        frame = pd.DataFrame(np.asarray(x).reshape(len(x), -1), columns=[f"f{i}" for i in range(int(np.prod(x.shape[1:])))])
        frame[label_column] = y
        frame.to_csv(path, index=False)
