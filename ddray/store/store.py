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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ddray.errors import InputError
from ddray.keys import config_key
from ddray.store.fs import (Location, delete_dir, delete_file, list_files, listdir, open_location, read_bytes,
                            read_failure, write_bytes)
from ddray.store.rows import BadRow, verify_row
from ddray.store.schema import ROW_SCHEMA, STAGES, Row

_READERS = 16  # row files read at once from an object store (each is one small GET)


@dataclass(frozen=True)
class RowScan:
    """Every row file of a store, verified: the rows that prove their trial, and the ones that do not."""

    keys: dict[str, set[str]]
    table: pa.Table
    bad: list[BadRow] = field(default_factory=list)


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
        """Read and verify every row file of `stages` (see `store/rows.py`)."""
        stages = list(stages)
        files = [(s, i.base_name) for s in stages for i in listdir(self.loc, self.path("rows", s))
                 if i.base_name.endswith(".parquet")]

        def check(item: tuple[str, str]) -> tuple[str, str, pa.Table | None, str | None]:
            stage, name = item
            try:  # a folder under a row's name, or an unreadable file, is a bad row named as such
                data = read_bytes(self.loc, self.path("rows", stage, name))
            except OSError as e:
                return stage, name, None, read_failure(self.loc, self.path("rows", stage, name), e)
            if data is None:
                return stage, name, None, "could not be read"
            return (stage, name, *verify_row(stage, name, data))

        if self.loc.is_local or len(files) < 2:
            checked = [check(f) for f in files]
        else:
            with ThreadPoolExecutor(max_workers=_READERS) as pool:
                checked = list(pool.map(check, files))
        keys: dict[str, set[str]] = {s: set() for s in stages}
        tables, bad = [], []
        for stage, name, table, why in checked:
            if table is None:
                bad.append(BadRow(stage, name, self.path("rows", stage, name), why or "invalid"))
            else:
                keys[stage].add(name[: -len(".parquet")])
                tables.append(table)
        table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
        return RowScan(keys, table, bad)

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
        out: list[dict[str, Any]] = []
        for key in keys:
            if self.has_row(stage, key):
                with self.loc.fs.open_input_file(self.row_path(stage, key)) as f:
                    out += pq.read_table(f, columns=columns).to_pylist()
        return out

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
        out = {}
        for n in names:
            if wanted is not None and n not in wanted:
                continue
            try:
                data = read_bytes(self.loc, self.path("errors", n))
            except OSError:
                data = None
            err = _error_record(data, n[:-5])
            if err is not None:
                out[n[:-5]] = err
        return out

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
