"""`Split`: one train or test split — its labels in memory, its pixels read on demand.

A trial reads what it trains and tests on, nothing more:
- `take(idx)`: the stored pixels (uint8 for images) of just those rows — rdm arms, selected
  images, DM's real batches, RDED's candidates;
- `chunks(n)`: an ordered pass in bounded chunks — evaluation, embeddings, statistics;
- `resident()`: the whole split as one zero-copy tensor when it is in memory or in the node
  cache (a read-only memory map: indexing it reads the page cache every process shares);
- `subset(idx)`: a view (the tuned track's validation split), sharing the parent's pixels.

Whole-split needs (`chunks`, `resident`, `tensor`) build the node cache entry the first time on a
node when the budget allows; otherwise they stream from the source. Labels are small and always
in memory. Pixels stay in the stored dtype: `RealData.pixels` normalizes a batch on its device.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .cache import Entry, Layout, NodeCache, entry_id, fingerprint, read_rows
from .pixels import chunk_stats, stats_chunk
from .prefetch import prefetch
from .sources import DecodedSource, PixelSource

FILL_CHUNK = 1024  # images decoded per step of a cache build (a progress bar's step)


class _DataClock:
    """Seconds this process spent producing pixels (decoding files, building cache entries).

    Why: data is now decoded when a trial first reads it, inside whatever it is doing; a method's
    time-to-synthesize must not count loading the real data (`ddray.methods.timing` subtracts it),
    as it never did when every split was decoded before the method ran.
    """

    def __init__(self) -> None:
        self._seconds = 0.0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self._seconds += time.perf_counter() - t0

    def seconds(self) -> float:
        with self._lock:
            return self._seconds


DATA_CLOCK = _DataClock()


@dataclass
class CacheSlot:
    """Where a split's entry lives in the node cache, and what it is (every part of its identity)."""

    cache: NodeCache
    describe: dict[str, Any]  # loader, root, options, split: what `ddray cache ls` shows
    root: Path | None = None  # fingerprints name files relative to it (moving a dataset keeps nothing stale)
    _eid: str | None = field(default=None, repr=False)

    def entry_id(self, source: PixelSource) -> str:
        """Hash of the identity and of the source files' names, sizes and mtimes (stat'ed once)."""
        if self._eid is None:
            self._eid = entry_id({**self.describe, "files": fingerprint(source.files(), self.root)})
        return self._eid


def _to_tensor(a: np.ndarray) -> Tensor:
    """Zero-copy. Memory maps are opened copy-on-write (writable, yet never writing the file); a
    decoded buffer may be read-only, which is fine: ddray never writes into data pixels."""
    if a.flags.writeable:
        return torch.from_numpy(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)


class SplitPixels:
    """The pixels behind a split and all its views: the source, and the resident array once there is one."""

    def __init__(self, source: PixelSource, labels: np.ndarray, slot: CacheSlot | None = None):
        self.source, self.slot = source, slot
        self._labels = labels  # the base split's labels (stored with the entry, checked at open)
        self._array: np.ndarray | None = None
        self._lock = threading.RLock()
        self._stats: dict[float, tuple[tuple[float, ...], tuple[float, ...]]] = {}

    @property
    def layout(self) -> Layout:
        return Layout(self.source.count, tuple(self.source.shape), str(self.source.dtype))

    @property
    def cacheable(self) -> bool:
        return self.slot is not None and self.slot.cache.enabled and bool(self.source.files())

    def resident(self, build: bool, progress: Callable[[int], None] | None = None) -> np.ndarray | None:
        """The whole split as an array without decoding: in memory, or its node-cache entry (built if
        `build`, calling `progress(rows)` as rows are decoded)."""
        with self._lock:
            if self._array is None:
                self._array = self.source.array()
            if self._array is None:
                entry = self._entry(build, progress)
                if entry is not None:
                    self._array = entry.x
            return self._array

    def _entry(self, build: bool, progress: Callable[[int], None] | None = None) -> Entry | None:
        """This split's node-cache entry (built if `build` and it fits), or None."""
        if not self.cacheable or self.slot is None:
            return None
        eid = self.slot.entry_id(self.source)
        entry = self.slot.cache.open(eid, self.layout, self._labels)
        if entry is None and build:
            fill = functools.partial(self._fill, progress=progress)
            with DATA_CLOCK.timing():
                entry = self.slot.cache.build(eid, self.layout, self.slot.describe, fill, self._labels)
        return entry

    def _fill(self, out: np.ndarray, progress: Callable[[int], None] | None = None) -> None:
        if isinstance(self.source, DecodedSource):
            self.source.fill_all(out)
            if progress is not None:
                progress(out.shape[0])
            return
        for start in range(0, out.shape[0], FILL_CHUNK):
            rows = np.arange(start, min(start + FILL_CHUNK, out.shape[0]))
            self.source.fill(out[start:start + len(rows)], rows)
            if progress is not None:
                progress(len(rows))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the base split: from the resident array, else decoded from the source.

        A source that cannot read part of its file builds the cache entry instead (it decodes
        everything anyway); one that can (image files) never builds for a partial read.
        """
        array = self.resident(build=not self.source.partial)
        if array is not None:
            return array[rows]
        with DATA_CLOCK.timing():
            return self.source.read(rows)

    def whole(self) -> np.ndarray:
        """The whole split in memory: resident, or decoded here into this process (kept)."""
        with self._lock:
            array = self.resident(build=True)
            if array is None:
                with DATA_CLOCK.timing():
                    self._array = array = self.source.read(np.arange(self.source.count))
            return array

    def stats(self, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean/std of the base split, computed once per node (kept beside its cache entry)."""
        with self._lock:
            if scale in self._stats:
                return self._stats[scale]
            eid = self.slot.entry_id(self.source) if self.cacheable and self.slot is not None else None
            found = self.slot.cache.stats(eid, scale) if eid is not None and self.slot is not None else None
            if found is None:
                found = chunk_stats(self._pass(stats_chunk(*self.source.shape[1:])), scale)
                if eid is not None and self.slot is not None:
                    self.slot.cache.save_stats(eid, scale, *found, describe=self.slot.describe)
            self._stats[scale] = found
            return found

    def _pass(self, size: int) -> Iterator[np.ndarray]:
        """The whole base split in order, `size` rows at a time, for a one-off pass that should not
        hold the split: the array in memory, file reads of the cache entry, or decodes from the
        source that build nothing (a source that decodes only as a whole builds its entry first)."""
        count = self.source.count
        array = self.source.array()
        entry = None if array is not None else self._entry(build=not self.source.partial)
        if array is None and entry is None:
            yield from self.chunks(np.arange(count), size, build=False)
            return
        for start in range(0, count, size):
            stop = min(start + size, count)
            yield array[start:stop] if array is not None else read_rows(entry, start, stop)  # type: ignore[arg-type]

    def chunks(self, rows: np.ndarray, size: int, build: bool = True) -> Iterator[np.ndarray]:
        """Rows `rows` in order, `size` at a time; streamed from the source, read ahead on a thread,
        when the split cannot be resident."""
        starts = range(0, len(rows), size)
        array = self.resident(build=build or not self.source.partial)
        if array is not None:
            for s in starts:
                part = rows[s:s + size]
                contiguous = len(part) > 0 and bool(np.all(np.diff(part) == 1))
                yield array[part[0]:part[-1] + 1] if contiguous else array[part]
            return
        chunks = prefetch(functools.partial(self.source.read, rows[s:s + size]) for s in starts)
        while True:
            with DATA_CLOCK.timing():  # the time spent waiting for a chunk is the decode not hidden by the caller's work
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk


class Split:
    """A train or test split (or a view of one): labels in memory, pixels where they live."""

    def __init__(self, name: str, labels: Tensor | np.ndarray, pixels: SplitPixels | PixelSource,
                 rows: np.ndarray | None = None):
        self.name = name
        self.labels = labels if isinstance(labels, Tensor) else torch.from_numpy(np.array(labels, dtype=np.int64))
        self.pixels = pixels if isinstance(pixels, SplitPixels) else SplitPixels(pixels, self.labels.numpy())
        self.rows = rows  # indices into the base split (None: the base split itself)
        n = self.pixels.source.count if rows is None else len(rows)
        if self.labels.ndim != 1 or self.labels.shape[0] != n:
            raise ValueError(f"{name} split: {n} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        """Its image count, from its rows (checked equal to its labels' at construction): knowing a
        split's size reads neither its labels nor its pixels (a search fingerprints a sealed test split)."""
        return len(self.rows) if self.rows is not None else int(self.pixels.source.count)

    def __repr__(self) -> str:
        view = "" if self.rows is None else " (view)"
        return f"Split({self.name!r}, {len(self)}×{self.shape} {self.dtype}{view})"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.pixels.source.shape
        return int(c), int(h), int(w)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, dtype=self.pixels.source.dtype)).dtype

    @property
    def nbytes(self) -> int:
        """Bytes of this split's stored pixels (uint8: one per channel and pixel)."""
        return len(self) * int(np.prod(self.shape)) * self.pixels.source.dtype.itemsize

    def _base_rows(self, idx: Tensor | np.ndarray | None = None) -> np.ndarray:
        local = np.arange(len(self)) if idx is None else np.asarray(
            idx.detach().cpu().numpy() if isinstance(idx, Tensor) else idx, dtype=np.int64).reshape(-1)
        return local if self.rows is None else self.rows[local]

    def take(self, idx: Tensor | np.ndarray) -> Tensor:
        """The stored pixels of rows `idx` (any order, repeats allowed) as a new CPU tensor."""
        return _to_tensor(np.ascontiguousarray(self.pixels.read(self._base_rows(idx))))

    def chunks(self, size: int) -> Iterator[Tensor]:
        """Every row in order, `size` at a time (CPU tensors of the stored dtype). A whole split
        builds its cache entry for the pass; a view reads its rows only."""
        for chunk in self.pixels.chunks(self._base_rows(), size, build=self.rows is None):
            yield _to_tensor(chunk)

    def resident(self) -> Tensor | None:
        """The whole split as one zero-copy tensor when it is in memory or in the node cache (built
        here if the budget allows); None when it can only be streamed. A view is a copy of just
        its rows (it never makes its parent split resident)."""
        if self.rows is not None:
            return self.take(np.arange(len(self)))
        array = self.pixels.resident(build=True)
        return None if array is None else _to_tensor(array)

    def tensor(self) -> Tensor:
        """The whole split as one tensor: resident, or decoded into this process's memory."""
        found = self.resident()
        return found if found is not None else _to_tensor(self.pixels.whole())

    def subset(self, idx: Tensor | np.ndarray) -> Split:
        """A view of rows `idx` that shares this split's pixels (and its cache entry)."""
        local = np.asarray(idx.detach().cpu().numpy() if isinstance(idx, Tensor) else idx, dtype=np.int64)
        return Split(self.name, self.labels[torch.from_numpy(local)], self.pixels, self._base_rows(local))

    def stats(self, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean/std of the pixels / `scale` (of the base split: views share its statistics)."""
        return self.pixels.stats(scale)

    def warm(self, progress: Callable[[int], None] | None = None) -> bool:
        """Make the whole split resident (build its node-cache entry); False when it must be streamed."""
        return self.pixels.resident(build=True, progress=progress) is not None

    def cache_entry(self) -> tuple[NodeCache, str] | None:
        """The node cache and this split's entry id, under which arrays derived from all of its pixels
        (embeddings) are cached too; None when the split is not file-backed or the cache is off."""
        px = self.pixels
        if self.rows is not None or not px.cacheable or px.slot is None:
            return None
        return px.slot.cache, px.slot.entry_id(px.source)
