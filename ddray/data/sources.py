"""Where a split's pixels come from: an array in memory, a file decoded whole, or one file per image.

A source reads rows on demand and never holds more than it is asked for, except a
`DecodedSource` (a CIFAR pickle, a gzipped idx file) that cannot decode part of its file: it
decodes the whole split once, on the first pixel read. A `FileSource` (ImageFolder) decodes
just the requested files on a thread pool (PIL releases the GIL while decoding), so an `rdm`
trial decodes only its IPC×C images and a `syn` trial none of the train split. Whole-split
passes go through the node cache (`ddray/data/cache.py`), which asks a source to `fill` it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ddray.errors import InputError

SHOWN_ERRORS = 3  # undecodable files named in one error, before "and N more"


class PixelSource:
    """The pixels of one split: `count` rows of `shape` (C, H, W) and `dtype`, read by row index."""

    shape: tuple[int, int, int]
    dtype: np.dtype
    count: int
    partial: bool = True  # reading a few rows costs a few rows (False: the whole file is decoded)

    def fill(self, out: np.ndarray, rows: np.ndarray) -> None:
        """Write rows `rows` (in that order) into `out[:len(rows)]`."""
        raise NotImplementedError

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` as a new (len(rows), C, H, W) array."""
        out = np.empty((len(rows), *self.shape), dtype=self.dtype)
        self.fill(out, np.asarray(rows, dtype=np.int64))
        return out

    def array(self) -> np.ndarray | None:
        """The whole split when it already is in this process's memory (nothing to decode), else None."""
        return None

    def files(self) -> list[Path]:
        """The files the pixels are decoded from (the node cache's fingerprint); [] when in memory."""
        return []


class ArraySource(PixelSource):
    """Pixels already in memory (bundled digits, a plugin's arrays): nothing to cache."""

    def __init__(self, array: np.ndarray):
        if array.ndim != 4:
            raise ValueError(f"pixels must be N×C×H×W, got shape {array.shape}")
        self._array = array
        self.shape = tuple(int(s) for s in array.shape[1:])  # type: ignore[assignment]
        self.dtype, self.count = array.dtype, int(array.shape[0])

    def fill(self, out: np.ndarray, rows: np.ndarray) -> None:
        out[: len(rows)] = self._array[rows]

    def array(self) -> np.ndarray:
        return self._array


class DecodedSource(PixelSource):
    """A file format that decodes only as a whole (pickles, gzip streams): decoded once, on first use.

    Without a node cache the decoded array is kept for the process (as every process did before
    the cache); with one, it is decoded into the cache entry and dropped (`decode` is called
    once per build, not kept).
    """

    partial = False

    def __init__(self, shape: Sequence[int], dtype: np.dtype | type, count: int, decode: Callable[[], np.ndarray],
                 files: Sequence[Path]):
        self.shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.dtype, self.count = np.dtype(dtype), int(count)
        self._decode, self._files = decode, list(files)
        self._kept: np.ndarray | None = None
        self._lock = threading.Lock()

    def decode(self) -> np.ndarray:
        x = self._decode()
        if x.shape != (self.count, *self.shape) or x.dtype != self.dtype:
            raise ValueError(f"decoded {x.shape} {x.dtype}; expected {(self.count, *self.shape)} {self.dtype}")
        return x

    def _whole(self) -> np.ndarray:
        with self._lock:
            if self._kept is None:
                self._kept = self.decode()
            return self._kept

    def fill(self, out: np.ndarray, rows: np.ndarray) -> None:
        out[: len(rows)] = self._whole()[rows]

    def fill_all(self, out: np.ndarray) -> None:
        """Decode straight into `out` (a cache entry) without keeping a private copy."""
        out[:] = self._kept if self._kept is not None else self.decode()

    def array(self) -> np.ndarray | None:
        return self._kept

    def files(self) -> list[Path]:
        return list(self._files)


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


class FileSource(PixelSource):
    """One image file per row, decoded on demand by `decode(path) -> (C, H, W) array` on a thread pool.

    `decode` is the loader's per-split preprocessing (open, convert, resize or crop to `shape`);
    `error(message)` makes the loader's InputError, so a bad file names the spec field too.
    Every undecodable file of a read is collected: the error names the first few and the count,
    and nothing is skipped (a skipped image would silently change the class counts).
    """

    def __init__(self, paths: Sequence[Path], shape: Sequence[int], decode: Callable[[Path], np.ndarray],
                 error: Callable[[str], InputError], dtype: np.dtype | type = np.uint8):
        self.paths = list(paths)
        self.shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.dtype, self.count = np.dtype(dtype), len(self.paths)
        self._decode, self._error = decode, error
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="ddray-decode")
            return self._pool

    def fill(self, out: np.ndarray, rows: np.ndarray) -> None:
        def one(i: int) -> tuple[Path, str] | None:
            path = self.paths[int(rows[i])]
            try:
                arr = self._decode(path)
            except (OSError, ValueError, SyntaxError) as e:  # PIL: OSError / UnidentifiedImageError; bad sizes
                return path, str(e) or type(e).__name__
            if arr.shape != self.shape:
                return path, f"decodes to {arr.shape}, expected {self.shape}"
            out[i] = arr
            return None

        failed = [f for f in self._executor().map(one, range(len(rows))) if f is not None]
        if failed:
            named = "; ".join(f"{p}: {m}" for p, m in failed[:SHOWN_ERRORS])
            more = f"; and {len(failed) - SHOWN_ERRORS} more" if len(failed) > SHOWN_ERRORS else ""
            raise self._error(f"{len(failed)} image file(s) cannot be decoded: {named}{more}")

    def files(self) -> list[Path]:
        return list(self.paths)
