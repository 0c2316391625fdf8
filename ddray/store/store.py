"""The content-keyed store: the single source of truth of a benchmark.

A trial is done iff `rows/<stage>/<key>.parquet` exists *and proves it* (`store/rows.py`: its name,
content key and config hash agree, and its schema is the row schema); a file that does not is
reported as a bad row, never counted or read as data, and `ddray run` moves it to `quarantine/`
and recomputes that trial. Rows are written once, atomically, by the worker that ran the trial
(not by the driver), so a killed driver loses nothing finished and a rerun recomputes nothing
stored. Errors, artifacts and resume checkpoints live beside the rows.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
import traceback as tb_mod
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ddray.errors import InputError
from ddray.keys import config_key
from ddray.store.fs import Location, delete_dir, delete_file, list_files, open_location, read_bytes, write_bytes
from ddray.store.rows import BadRow
from ddray.store.scan import Compaction, RowScan, bounded_map, compact, scan_rows
from ddray.store.schema import ROW_SCHEMA, STAGES, Row
from ddray.store.segments import index_path

__all__ = ["RowScan", "Store"]


class Store:
    def __init__(self, uri: str):
        self.loc: Location = open_location(uri, folder=True)
        self.uri = uri

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return self.loc.join(*parts)

    def row_path(self, stage: str, key: str) -> str:
        return self.path("rows", stage, f"{key}.parquet")

    # ------------------------------------------------------------------ checks
    def check_writable(self) -> None:
        """Fail before any work starts when the store cannot be written."""
        probe = self.path(f".probe-{socket.gethostname()}-{time.time_ns()}")
        try:
            write_bytes(self.loc, probe, b"ok")
            delete_file(self.loc, probe)
        except Exception as e:  # noqa: BLE001 — any failure means "not writable", reported plainly
            raise InputError(f"store '{self.uri}' is not writable: {e}", path="store") from None

    # ------------------------------------------------------------------ spec
    def save_spec(self, text: str) -> None:
        write_bytes(self.loc, self.path("spec.yaml"), text.encode())
        write_bytes(self.loc, self.path("specs", f"{config_key(text)}.yaml"), text.encode())

    def stored_spec_texts(self) -> list[str]:
        """Every spec ever run into this store (`specs/<hash>.yaml`), oldest name first; spec.yaml if none."""
        texts = []
        for name in list_files(self.loc, self.path("specs"), ".yaml"):
            data = read_bytes(self.loc, self.path("specs", name))
            if data is not None:
                texts.append(data.decode(errors="replace"))
        current = self.stored_spec()
        if current is not None and current not in texts:
            texts.append(current)
        return texts

    def stored_spec(self) -> str | None:
        data = read_bytes(self.loc, self.path("spec.yaml"))
        return data.decode() if data is not None else None

    # ------------------------------------------------------------------ rows
    def scan(self, stages: Iterable[str] = STAGES) -> RowScan:
        """Every verified row of `stages` and every bad row file (see `store/scan.py`, `store/rows.py`).

        Rows come from the compacted index where their files are listed unchanged, and from the
        files themselves otherwise, so each file is read once per compaction, not once per command.
        """
        return scan_rows(self.loc, stages)

    def dataset_files(self) -> list[str]:
        """The files that hold every verified row exactly once: the index's segments and the newer row files.

        For pyarrow's dataset API (docs/architecture.md): `pyarrow.dataset.dataset(store.dataset_files(),
        filesystem=store.loc.fs, format="parquet", schema=ROW_SCHEMA).to_table()` is the whole store
        as one table (the schema leaves out the segments' file-identity columns). When an index entry
        no longer matches its file, the row files alone are named, so no stale entry is read.
        """
        scan = self.scan()
        refs, rows = (scan.segments, scan.table.slice(scan.indexed)) if not scan.dropped else ((), scan.table)
        ids = rows.select(["stage", "key"]).to_pydict()
        return [index_path(self.loc, r.name) for r in refs] + [self.row_path(s, k) for s, k in zip(ids["stage"], ids["key"])]

    def compact(self, now: float | None = None) -> Compaction:
        """Fold the rows written since the last compaction into the index (`store/segments.py`)."""
        return compact(self.loc, now=now)

    def done_keys(self, stages: Iterable[str] = STAGES) -> dict[str, set[str]]:
        """Verified stored keys per stage."""
        return self.scan(stages).keys

    def stored_keys(self) -> set[str]:
        """Every verified stored key, whatever its stage (keys are unique across stages)."""
        return {k for keys in self.done_keys().values() for k in keys}

    def has_row(self, stage: str, key: str) -> bool:
        """Whether the row file exists: one metadata call on that path, not a listing of its stage."""
        return self.loc.fs.get_file_info(self.row_path(stage, key)).type == pafs.FileType.File

    def write_row(self, row: Row) -> bool:
        """Store one finished trial; a row already there is kept (first writer wins). Returns True if written."""
        stage, key = row.stage, row.key
        if self.has_row(stage, key):
            return False
        table = pa.Table.from_pylist([row.record()], schema=ROW_SCHEMA)
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        written = write_bytes(self.loc, self.row_path(stage, key), buf.getvalue(), exclusive=True)
        delete_file(self.loc, self.path("errors", f"{key}.json"))
        return written

    def quarantine(self, bad: Iterable[BadRow], folder: str = "quarantine") -> list[str]:
        """Move bad row files to quarantine/<stage>/ (kept for inspection); returns where they went.

        Their keys are then missing, so the run recomputes exactly those trials. Stale rows (valid,
        but of inputs that changed since: `ddray.freshness`) are set aside the same way, in `stale/`.
        """
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = []
        for b in bad:
            dest = self.path(folder, b.stage, f"{b.name}.{stamp}")
            if self.loc.is_local:
                os.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            else:
                self.loc.fs.create_dir(dest.rsplit("/", 1)[0], recursive=True)
            self.loc.fs.move(b.path, dest)
            moved.append(dest)
        return moved

    def read_table(self) -> pa.Table:
        """Every verified row (bad row files are left out: `scan().bad` names them)."""
        return self.scan().table

    def read_rows(self):  # -> pandas.DataFrame
        return self.read_table().to_pandas()

    def read_stage_rows(self, stage: str, keys: Iterable[str], columns: list[str]) -> list[dict[str, Any]]:
        """`columns` of the stored rows of `stage` among `keys` (absent keys are skipped)."""
        def one(key: str) -> list[dict[str, Any]]:
            data = read_bytes(self.loc, self.row_path(stage, key))
            return [] if data is None else pq.read_table(io.BytesIO(data), columns=columns).to_pylist()

        return [row for rows in bounded_map(one, keys, not self.loc.is_local) for row in rows]

    # ------------------------------------------------------------------ errors
    def write_error(self, key: str, stage: str, label: str, exc: BaseException) -> dict[str, Any]:
        """Record the last failure of a trial (with its traceback) and count the attempt."""
        old = self.errors_of([key]).get(key, {})
        err = {"key": key, "stage": stage, "label": label, "attempts": int(old.get("attempts", 0)) + 1,
               "exception": f"{type(exc).__name__}: {exc}",
               "traceback": "".join(tb_mod.format_exception(type(exc), exc, exc.__traceback__)),
               "hostname": socket.gethostname(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_bytes(self.loc, self.path("errors", f"{key}.json"), json.dumps(err, indent=1).encode())
        return err

    def errors_of(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The stored last failure of each key; an unreadable error file counts as no error.

        Why: an error file is a note for people, not a result; a damaged one must neither stop
        `ddray status` nor keep a trial's real error from being written over it.
        """
        names = list_files(self.loc, self.path("errors"), ".json")
        wanted = None if keys is None else {f"{k}.json" for k in keys}
        names = [n for n in names if wanted is None or n in wanted]
        found = bounded_map(self._error_file, names, not self.loc.is_local)
        return {n[:-5]: err for n, err in zip(names, found) if err is not None}

    def _error_file(self, name: str) -> dict[str, Any] | None:
        try:
            data = read_bytes(self.loc, self.path("errors", name))
        except OSError:
            data = None
        return _error_record(data, name[:-5])

    # ------------------------------------------------------------------ artifacts
    def artifact_dir(self, kind: str, key: str) -> str:
        return self.path("artifacts", kind, key)

    def put_artifact(self, kind: str, key: str, name: str, data: bytes) -> None:
        write_bytes(self.loc, f"{self.artifact_dir(kind, key)}/{name}", data)

    def get_artifact(self, kind: str, key: str, name: str) -> bytes | None:
        return read_bytes(self.loc, f"{self.artifact_dir(kind, key)}/{name}")

    def drop_artifacts(self, kind: str, key: str) -> None:
        delete_dir(self.loc, self.artifact_dir(kind, key))


def _error_record(data: bytes | None, key: str) -> dict[str, Any] | None:
    """A stored error as written by `write_error`, or None when the file is not one."""
    try:
        err = json.loads(data or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(err, dict) or err.get("key") != key:
        return None
    try:
        err["attempts"] = int(err.get("attempts", 1))
    except (TypeError, ValueError):
        return None
    return {"stage": "?", "label": "", "exception": "?", **err}
