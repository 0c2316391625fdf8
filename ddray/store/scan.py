"""Read every row of a store once: the compacted index where it still holds, the row files where not.

`scan_rows` is the one reader of rows (`Store.scan` calls it): it lists the row files, takes the
segment entries (`store/segments.py`) whose files are listed unchanged, and reads and verifies
(`store/rows.py: verify_row`) only the files no segment vouches for: rows written since the last
compaction, and files that changed since (a changed file wins). `compact` folds what was read
from files into a new segment and switches the manifest; `ddray run` compacts every few hundred
stored rows and at its end, `ddray store compact STORE` on demand.

On an object store every file read is one GET, so listings (one per stage) and reads go out
`READERS` at a time; a local disk is read in order (its reads are not worth a thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import pyarrow as pa

from ddray.store.fs import Location, listdir, read_bytes, read_failure
from ddray.store.rows import SUFFIX, BadRow, verify_row
from ddray.store.schema import ROW_SCHEMA, STAGES
from ddray.store.segments import (MAX_SEGMENTS, MTIME, SIZE, FileId, SegmentRef, collect_orphans, proven,
                                  read_manifest, read_segment, write_manifest, write_segment)

READERS = 16  # files read (or folders listed) at once from an object store; each is one small request
T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], parallel: bool) -> list[R]:
    """[fn(x) for x in items], `READERS` at a time when `parallel` (remote I/O), in order either way."""
    items = list(items)
    if not parallel or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(READERS, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass(frozen=True)
class RowScan:
    """Every row file of a store, verified: the rows that prove their trial, and the ones that do not.

    `table` holds the rows taken from the index first (`indexed` of them), then those read from
    files; `ids[i]` is the identity of row i's file. `segments` are the manifest's segments that
    were read, `dropped` the index entries (or whole segments) that no longer hold.
    """

    keys: dict[str, set[str]]
    table: pa.Table
    bad: list[BadRow] = field(default_factory=list)
    ids: tuple[FileId, ...] = ()
    indexed: int = 0
    segments: tuple[SegmentRef, ...] = ()
    dropped: int = 0


def list_rows(loc: Location, stages: list[str]) -> dict[tuple[str, str], FileId]:
    """(stage, file name) -> identity of every `*.parquet` file under rows/<stage>/."""
    def one(stage: str) -> list[tuple[tuple[str, str], FileId]]:  # a folder under a row's name is listed: a bad row
        return [((stage, i.base_name), FileId(int(i.size or 0), int(i.mtime_ns or 0)))
                for i in listdir(loc, loc.join("rows", stage)) if i.base_name.endswith(SUFFIX)]

    return dict(item for found in bounded_map(one, stages, not loc.is_local) for item in found)


def _from_index(loc: Location, stages: set[str], listed: dict[tuple[str, str], FileId]):
    """The index entries still vouched for by their listed files: (tables, ids, used names, refs read, dropped)."""
    refs = read_manifest(loc)
    segments = bounded_map(lambda r: read_segment(loc, r), refs, not loc.is_local)
    tables, ids, used, read, dropped = [], [], set(), [], 0
    for ref, seg in zip(refs, segments):
        if seg is None:
            dropped += 1
            continue
        read.append(ref)
        ok = proven(seg)
        cols = seg.select(["key", "stage", SIZE, MTIME]).to_pydict()
        keep = []
        for i, (key, stage, size, mtime) in enumerate(zip(cols["key"], cols["stage"], cols[SIZE], cols[MTIME])):
            if stage not in stages:
                continue
            name = (stage, f"{key}{SUFFIX}")
            if ok[i] and name not in used and listed.get(name) == FileId(size, mtime):
                keep.append(i)
                used.add(name)
                ids.append(listed[name])
            else:
                dropped += 1
        tables.append(seg.take(pa.array(keep, pa.int64())).select(ROW_SCHEMA.names))
    return tables, ids, used, tuple(read), dropped


def scan_rows(loc: Location, stages: Iterable[str] = STAGES) -> RowScan:
    """Every verified row of `stages` and every bad row file, reading each file only when the index cannot vouch."""
    stages = list(stages)
    listed = list_rows(loc, stages)
    tables, ids, used, refs, dropped = _from_index(loc, set(stages), listed)
    indexed = len(ids)
    fresh = sorted(n for n in listed if n not in used)

    def check(item: tuple[str, str]) -> tuple[pa.Table | None, str | None]:
        path = loc.join("rows", *item)
        try:  # a folder under a row's name, or an unreadable file, is a bad row named as such
            data = read_bytes(loc, path)
        except OSError as e:
            return None, read_failure(loc, path, e)
        return (None, "could not be read") if data is None else verify_row(item[0], item[1], data)

    keys: dict[str, set[str]] = {s: set() for s in stages}
    for stage, name in used:
        keys[stage].add(name[: -len(SUFFIX)])
    bad = []
    for (stage, name), (table, why) in zip(fresh, bounded_map(check, fresh, not loc.is_local)):
        if table is None:
            bad.append(BadRow(stage, name, loc.join("rows", stage, name), why or "invalid"))
        else:
            keys[stage].add(name[: -len(SUFFIX)])
            tables.append(table)
            ids.append(listed[(stage, name)])
    table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
    return RowScan(keys, table, bad, tuple(ids), indexed, refs, dropped)


@dataclass(frozen=True)
class Compaction:
    """What `compact` did: the scan it folded, the segment it wrote (None: the index was current)."""

    scan: RowScan
    wrote: SegmentRef | None = None
    merged: bool = False
    removed: tuple[str, ...] = ()


def compact(loc: Location, *, max_segments: int = MAX_SEGMENTS, now: float | None = None) -> Compaction:
    """Fold the rows read from files into a new segment, then switch the manifest to it.

    Only the new rows are written, beside the segments already named; all rows are merged into
    one segment when the index has `max_segments` or holds entries that no longer match their
    files (changed, removed or unreadable). Safe to kill at any point and to run beside another
    compaction (see `store/segments.py`).
    """
    scan = scan_rows(loc, STAGES)
    fresh = scan.table.num_rows - scan.indexed
    merge = scan.dropped > 0 or len(scan.segments) >= max_segments
    if not fresh and not merge:
        return Compaction(scan)
    rows, ids = (scan.table, scan.ids) if merge else (scan.table.slice(scan.indexed), scan.ids[scan.indexed:])
    wrote = write_segment(loc, rows, list(ids)) if rows.num_rows else None
    kept = () if merge else scan.segments
    segments = (*kept, wrote) if wrote is not None else kept
    write_manifest(loc, segments)
    return Compaction(scan, wrote, merge, tuple(collect_orphans(loc, segments, now)))
