"""Data that does not fit in memory: samples read from disk as batches ask for them.

An ``.npy`` file, or a member of an uncompressed ``.npz`` archive (``np.savez``), stores its
rows one after another at a known offset, so a sample is one positioned read (``os.pread``)
away: nothing maps or copies the whole array into the process. A :class:`DiskArray` is one
split's samples (its row numbers into the file), put channel-first, standardised with the
training split's statistics and laid out as the model takes them, read when indexed. Training
iterates it through a ``DataLoader`` whose worker processes do the reading.
"""

from __future__ import annotations

import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimnas.data._preprocess import channel_first_batch, input_shape_of, to_input_layout
from slimnas.errors import ConfigError

CHUNK_BYTES = 8 << 20  # rows read at once when a whole file is scanned (checks, statistics)
LOCAL_HEADER = 30  # bytes of a zip archive's local file header before the member's name


@dataclass(frozen=True)
class RowFile:
    """An array's rows in a file: C-ordered rows of ``shape[1:]`` starting at byte ``offset``.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp() + "/x.npy"
        >>> np.save(path, np.arange(12.0).reshape(4, 3))
        >>> RowFile.of_npy(path).read(np.array([3, 1])).tolist()
        [[9.0, 10.0, 11.0], [3.0, 4.0, 5.0]]
    """

    path: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]

    @classmethod
    def of_npy(cls, path: str | Path, *, field: str = "data.dataset") -> RowFile:
        """The rows of an ``.npy`` file."""
        with open(path, "rb") as f:
            return cls._at(str(path), f, 0, field)

    @classmethod
    def of_npz(cls, path: str | Path, member: str, *, field: str = "data.dataset") -> RowFile:
        """The rows of ``member`` (``x`` for ``x.npy``) in an uncompressed ``.npz``."""
        try:
            with zipfile.ZipFile(path) as z:
                info = z.getinfo(f"{member}.npy")
        except (zipfile.BadZipFile, OSError, KeyError) as e:
            raise ConfigError(field, f"a .npz archive with an array '{member}'", f"{path}: {e}") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise ConfigError("data.stream", "an uncompressed .npz to read from disk (np.savez, not "
                              "np.savez_compressed), or a folder of .npy files", str(path))
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(LOCAL_HEADER)
            if len(header) < LOCAL_HEADER or header[:4] != b"PK\x03\x04":
                raise ConfigError(field, "an intact .npz archive", str(path))
            name_len, extra_len = struct.unpack("<2H", header[26:30])
            return cls._at(str(path), f, info.header_offset + LOCAL_HEADER + name_len + extra_len, field)

    @classmethod
    def _at(cls, path: str, f, start: int, field: str) -> RowFile:
        fmt = np.lib.format
        f.seek(start)
        try:
            version = fmt.read_magic(f)
            shape, fortran, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0)
                                     else fmt.read_array_header_2_0(f))
        except (ValueError, OSError, EOFError) as e:
            raise ConfigError(field, "a NumPy array file (.npy)", f"{path}: {e}") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ConfigError(field, "numeric arrays (no pickled objects)", f"{path}: {dtype}")
        if fortran and len(shape) > 1:
            raise ConfigError(field, "a C-ordered array (np.ascontiguousarray before saving)", path)
        if len(shape) < 2:
            raise ConfigError(field, "samples shaped (N, ...) with at least 2 dimensions", f"{path}: {shape}")
        rows = cls(path, f.tell(), dtype, tuple(int(s) for s in shape))
        if os.path.getsize(path) < rows.offset + rows.nbytes:
            raise ConfigError(field, "a complete file (it is shorter than its header says)", path)
        return rows

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:])) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.row_bytes * self.shape[0]

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, in the given order (runs of consecutive rows in one read each)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        fd = _descriptor(self.path)
        flat = out.reshape(len(rows), -1).view(np.uint8).reshape(len(rows), self.row_bytes)
        for run in np.split(np.arange(len(rows)), breaks):
            first, count = int(sorted_rows[run[0]]), len(run)
            buf = os.pread(fd, count * self.row_bytes, self.offset + first * self.row_bytes)
            if len(buf) != count * self.row_bytes:
                raise OSError(f"{self.path}: a short read (the file changed while training?)")
            flat[order[run]] = np.frombuffer(buf, dtype=np.uint8).reshape(count, self.row_bytes)
        return out

    def chunks(self, rows: np.ndarray):
        """``(row_numbers, values)`` in slices of about :data:`CHUNK_BYTES`."""
        step = max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        for i in range(0, len(rows), step):
            part = rows[i : i + step]
            yield part, self.read(part)


_FDS: dict[tuple[int, str], int] = {}


def _descriptor(path: str) -> int:
    """A read-only descriptor of ``path`` for this process (DataLoader workers open their own)."""
    key = (os.getpid(), path)
    fd = _FDS.get(key)
    if fd is None:
        fd = _FDS[key] = os.open(path, os.O_RDONLY)
    return fd


class DiskArray:
    """One split's samples, read from a :class:`RowFile` when indexed, as float32 tensors in the
    model's layout. It stands where a tensor of samples would (``len``, ``shape``, indexing by
    ints, slices and index arrays); nothing else holds the samples in memory.

    Args:
        source: the file's rows.
        rows: this split's row numbers.
        layout: the file's layout of 4-D rows (``nchw``/``nhwc``).
        mean, std: standardisation (channel-first, broadcast over a sample), or ``None``.
        input_layout: the model's layout.
        num_workers: DataLoader worker processes reading training batches.
    """

    def __init__(self, source: RowFile, rows: np.ndarray, *, layout: str = "", mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, input_layout: str = "channels_first", num_workers: int = 0) -> None:
        self.source, self.rows = source, np.asarray(rows, dtype=np.int64)
        self.layout, self.mean, self.std = layout, mean, std
        self.input_layout, self.num_workers = input_layout, num_workers
        sample = channel_first_batch(np.zeros((1, *source.shape[1:]), np.float32), layout).shape[1:]
        self.sample_shape = tuple(sample)  # channel-first

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *input_shape_of(self.sample_shape, self.input_layout)))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"DiskArray({self.source.path!r}, {tuple(self.shape)})"

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        single = isinstance(key, (int, np.integer))
        rows = self.rows[[key] if single else key]
        x = self.transform(self.source.read(rows))
        out = torch.from_numpy(x)
        return out[0] if single else out

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Raw rows as the model's inputs."""
        x = channel_first_batch(raw.astype(np.float32, copy=False), self.layout)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(to_input_layout(x, self.input_layout), dtype=np.float32)

    def subset(self, index: np.ndarray) -> DiskArray:
        """The samples at ``index`` of this array, still on disk."""
        return DiskArray(self.source, self.rows[index], layout=self.layout, mean=self.mean, std=self.std,
                         input_layout=self.input_layout, num_workers=self.num_workers)

    def loader(self, batches: list[torch.Tensor], y: torch.Tensor) -> torch.utils.data.DataLoader:
        """``(x, y)`` batches at the given index batches, in their order, read by
        :attr:`num_workers` worker processes (the batches themselves are fixed by the caller,
        so the workers change nothing but the speed)."""
        return torch.utils.data.DataLoader(_Batches(self, y.cpu(), batches), batch_size=None, shuffle=False,
                                           num_workers=self.num_workers,
                                           prefetch_factor=4 if self.num_workers else None)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, x: DiskArray, y: torch.Tensor, batches: list[torch.Tensor]) -> None:
        self.x, self.y, self.batches = x, y, [b.cpu() for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        idx = self.batches[i]
        return self.x[idx], self.y[idx]
