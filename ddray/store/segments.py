"""The compacted index of a store's rows: a few Parquet segments and one small manifest naming them.

Why: a store of 10,000 trials is 10,000 row files, and reading each (one GET on an object store)
made every `status`, `report` and rerun grow with the benchmark. Rows stay the source of truth
(one atomic, self-verifying file per trial, first writer wins); the index only saves reading
them again:

    index/manifest.json                 {"format": 1, "segments": [{"name", "rows", "bytes"}, ...]}
    index/seg-<time>-<id>.parquet       the row columns (ROW_SCHEMA) + the row file's identity

Each segment entry holds one row's full content, as verified from its file, and that file's
identity when it was read: its size and modification time as the filesystem lists them (an
object store's LastModified; pyarrow's listing has no ETag). A reader (`store/scan.py`) lists
the row files (one listing per stage), takes a segment entry only while its file is still listed
with the same identity, and reads and verifies every other file itself: a row written after
the last compaction is seen, a file changed since wins and is re-verified (so a damaged one is
caught), and a file that is gone (quarantined) is gone from the index too.

Format: a plain Parquet dataset named by a manifest, no table format. Why: every row is written by
a worker that knows nothing of the index, so the index needs no transaction log of its own; a
JSON manifest switched by one atomic write (temp file + rename locally, one PUT on S3/GCS) gives
readers the old or the new set of segments, never a mix, with no server and no extra dependency,
and any Parquet reader (pyarrow's dataset API, DuckDB, pandas) reads segments as they are.

Crash safety: a segment is written whole under a new name before the manifest names it, so a
compaction killed at any point leaves either the old manifest (the new segment is an orphan,
ignored, collected later) or the new one. A segment whose size differs from its manifest entry,
that does not parse, or that has another schema (an older row layout) is ignored: its rows are
read from their files, and the next compaction writes them again. Two compactions at once each
write their own segment and then the whole manifest; the last write wins and each manifest is
complete on its own, so the index is one consistent set either way (only an orphan is left).
"""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ddray.store.fs import Location, delete_file, listdir, read_bytes, write_bytes
from ddray.store.rows import SUFFIX, identity_problem, key_of_name
from ddray.store.schema import ROW_SCHEMA

INDEX = "index"
MANIFEST = "manifest.json"
FORMAT = 1
SIZE, MTIME = "_file_size", "_file_mtime_ns"
SEGMENT_SCHEMA = ROW_SCHEMA.append(pa.field(SIZE, pa.int64(), nullable=False)).append(
    pa.field(MTIME, pa.int64(), nullable=False))
MAX_SEGMENTS = 8        # more, and the next compaction merges them into one
ORPHAN_AGE_S = 3600.0   # unnamed segments older than this are deleted (a reader may still hold an older manifest)


@dataclass(frozen=True)
class FileId:
    """A row file's identity as listed: what a segment entry must still match to be used."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SegmentRef:
    """One manifest entry: a segment's file name, its row count and its size in bytes."""

    name: str
    rows: int
    bytes: int


def index_path(loc: Location, *parts: str) -> str:
    return loc.join(INDEX, *parts)


def read_manifest(loc: Location) -> tuple[SegmentRef, ...]:
    """The segments the manifest names; none when it is absent or is not a manifest (then rows are read)."""
    try:  # an index that cannot be read is no index: every row is read from its file
        doc = json.loads(read_bytes(loc, index_path(loc, MANIFEST)) or b"")
        if doc.get("format") != FORMAT:
            return ()
        return tuple(SegmentRef(str(s["name"]), int(s["rows"]), int(s["bytes"])) for s in doc["segments"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return ()


def write_manifest(loc: Location, segments: tuple[SegmentRef, ...] | list[SegmentRef]) -> None:
    """Switch the index to `segments` in one atomic write."""
    doc = {"format": FORMAT, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "segments": [{"name": s.name, "rows": s.rows, "bytes": s.bytes} for s in segments]}
    write_bytes(loc, index_path(loc, MANIFEST), json.dumps(doc, indent=1).encode())


def read_segment(loc: Location, ref: SegmentRef) -> pa.Table | None:
    """The segment's entries (SEGMENT_SCHEMA), or None when it is missing, torn or of another layout."""
    try:
        data = read_bytes(loc, index_path(loc, ref.name))
        if data is None or len(data) != ref.bytes:
            return None
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.schema.names != SEGMENT_SCHEMA.names or table.num_rows != ref.rows:
        return None
    try:
        return table.cast(SEGMENT_SCHEMA)
    except (pa.ArrowException, ValueError):
        return None


def proven(entries: pa.Table) -> list[bool]:
    """Per entry: do its own columns prove its trial (`rows.identity_problem`, as for a row file)?"""
    cols = entries.select(["key", "stage", "config_json"]).to_pydict()
    return [key_of_name(f"{k}{SUFFIX}") is not None and identity_problem(k, s, k, s, c) is None
            for k, s, c in zip(cols["key"], cols["stage"], cols["config_json"])]


def write_segment(loc: Location, rows: pa.Table, ids: list[FileId]) -> SegmentRef:
    """Write `rows` (ROW_SCHEMA) with their files' identities as a new segment; the manifest is not touched."""
    table = rows.append_column(SEGMENT_SCHEMA.field(SIZE), pa.array([i.size for i in ids], pa.int64())) \
                .append_column(SEGMENT_SCHEMA.field(MTIME), pa.array([i.mtime_ns for i in ids], pa.int64()))
    buf = io.BytesIO()
    pq.write_table(table.cast(SEGMENT_SCHEMA), buf, compression="zstd")
    name = f"seg-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:12]}.parquet"
    data = buf.getvalue()
    write_bytes(loc, index_path(loc, name), data, exclusive=True)
    return SegmentRef(name, table.num_rows, len(data))


def collect_orphans(loc: Location, keep: tuple[SegmentRef, ...] | list[SegmentRef], now: float | None = None,
                    min_age_s: float = ORPHAN_AGE_S) -> list[str]:
    """Delete segment files no manifest names any more, once older than `min_age_s`; returns their names.

    Why the age: a reader that read the previous manifest a moment ago, or a compaction running
    beside this one whose manifest will name its new segment, must still find the files it expects.
    """
    now = time.time() if now is None else now
    names = {s.name for s in keep}
    gone = []
    for info in listdir(loc, index_path(loc)):
        if info.type != pafs.FileType.File or not info.base_name.startswith("seg-") or info.base_name in names:
            continue
        if info.mtime_ns is not None and now - info.mtime_ns / 1e9 >= min_age_s:
            delete_file(loc, info.path)
            gone.append(info.base_name)
    return gone
