"""Folder formats: a folder of image files per class (read with Pillow), and a folder of
``.npy`` files (``x.npy``, ``y.npy``, optionally ``x_test.npy``, ``y_test.npy``), which can be
read from disk per batch (``data.stream``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slimnas.data._formats import BaseFormat, register_format
from slimnas.data._stream import RowFile
from slimnas.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MODES = ("RGB", "L")
GREY = {"1", "L", "I", "I;16", "F"}


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@register_format("image-folder")
class ImageFolderFormat(BaseFormat):
    """One subfolder of image files per class (``root/cat/001.png``, ``root/dog/7.jpg``); the
    subfolder names are the labels. ``root/train/<class>/`` with ``root/test/<class>/`` gives
    the test split too. Images load as ``(N, C, H, W)`` pixel values 0-255, all at one size.

    Options (``data.options``): ``size`` (``32`` or ``[H, W]``: every image resized to it; by
    default they must all share one size) and ``mode`` (``RGB`` or ``L``; by default ``L`` when
    every image is greyscale, else ``RGB``).
    """

    example = "image"

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.is_dir() and not (path / "x.npy").exists()

    def read(self, path, *, label_column="label", size=None, mode=None):
        size = _size(size)
        if mode is not None and mode not in MODES:
            raise ConfigError("data.options.mode", f"one of {list(MODES)}", mode)
        split = {d.name for d in _class_dirs(path)}
        if split == {"train", "test"}:
            files, labels = self._listing(path / "train")
            test_files, test_labels = self._listing(path / "test")
        else:
            files, labels = self._listing(path)
            test_files, test_labels = [], []
        everything = files + test_files
        if mode is None:  # from the headers: greyscale only when every image is
            mode = "L" if {self._open(f, decode=False).mode for f in everything} <= GREY else "RGB"
        x = self._load(everything, size, mode)
        n = len(files)
        if not test_files:
            return x, np.array(labels), None, None
        return x[:n], np.array(labels), x[n:], np.array(test_labels)

    def _listing(self, root: Path) -> tuple[list[Path], list[str]]:
        classes = _class_dirs(root)
        files, labels = [], []
        for c in classes:
            found = _images(c)
            files += found
            labels += [c.name] * len(found)
        if not files:
            raise ConfigError("data.dataset", f"a folder with one subfolder of images ({', '.join(IMAGE_SUFFIXES)}) "
                              "per class", f"{root} ({len(classes)} subfolders, no images)")
        return files, labels

    @staticmethod
    def _open(path: Path, decode: bool = True):
        from PIL import Image, UnidentifiedImageError

        try:
            img = Image.open(path)
            if decode:
                img.load()
            return img
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise ConfigError("data.dataset", "readable image files", f"{path}: {e}") from None

    def _load(self, files: list[Path], size: tuple[int, int] | None, mode: str) -> np.ndarray:
        from PIL import Image

        arrays, first = [], None
        for f in files:
            img = self._open(f).convert(mode)
            if size is not None:
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if first is None:
                first = (f, a.shape)
            elif a.shape != first[1]:
                raise ConfigError("data.options.size", f"one image size for all (or data.options.size to resize "
                                  f"to); {first[0].name} is {first[1][1]}x{first[1][2]}", f"{f.name}: {a.shape[1]}x{a.shape[2]}")
            arrays.append(a)
        return np.stack(arrays)

    def write(self, path, x, y, *, label_column="label"):
        from PIL import Image

        x = np.asarray(x)
        for i, (img, label) in enumerate(zip(x, np.asarray(y), strict=True)):
            folder = Path(path) / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            a = np.clip(np.rint(img), 0, 255).astype(np.uint8)
            Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(folder / f"{i:05d}.png")


#: the largest side an image is resized to (``data.options.size``)
MAX_IMAGE_SIDE = 4096


def _size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    sides = (size, size) if isinstance(size, int) else size
    if (isinstance(sides, (list, tuple)) and len(sides) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_IMAGE_SIDE for s in sides)):
        return int(sides[0]), int(sides[1])
    raise ConfigError("data.options.size", f"an image size: an integer or [height, width], each in 1..{MAX_IMAGE_SIDE:,}",
                      size)


@register_format("npy-folder")
class NpyFolderFormat(BaseFormat):
    """A folder of ``x.npy`` and ``y.npy`` (and optionally ``x_test.npy`` and ``y_test.npy``),
    never unpickled; with ``data.stream`` samples are read from ``x.npy`` per batch."""

    streams = True

    @classmethod
    def matches(cls, path: Path) -> bool:
        return path.is_dir() and (path / "x.npy").exists()

    def _labels(self, path: Path):
        if not (path / "y.npy").is_file():
            raise ConfigError("data.dataset", "a folder with x.npy and y.npy", f"{path} has no y.npy")
        y = _load(path / "y.npy")
        y_test = _load(path / "y_test.npy") if (path / "y_test.npy").is_file() else None
        return y, y_test

    def read(self, path, *, label_column="label"):
        y, y_test = self._labels(path)
        x = _load(path / "x.npy")
        x_test = _load(path / "x_test.npy") if (path / "x_test.npy").is_file() else None
        if len(x) != len(y):
            raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
        return x, y, x_test, y_test

    def read_rows(self, path, *, label_column="label"):
        y, y_test = self._labels(path)
        x = RowFile.of_npy(path / "x.npy")
        x_test = RowFile.of_npy(path / "x_test.npy") if (path / "x_test.npy").is_file() else None
        if len(x) != len(y):
            raise ConfigError("data.dataset", "as many labels as samples", f"{path}: {len(x)} x, {len(y)} y")
        return x, y, x_test, y_test

    def write(self, path, x, y, *, label_column="label"):
        Path(path).mkdir(parents=True, exist_ok=True)
        np.save(Path(path) / "x.npy", np.ascontiguousarray(x))
        np.save(Path(path) / "y.npy", np.asarray(y))


def _load(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ConfigError("data.dataset", "numeric .npy arrays (no pickled objects)", f"{path}: {e}") from None
    if getattr(array, "ndim", 1) == 0:
        raise ConfigError("data.dataset", "arrays of one row per sample: x shaped (N, ...), y shaped (N,)",
                          f"{path}: a single value (a 0-d array)")
    return array
