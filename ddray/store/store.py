"""The content-keyed store: the single source of truth of a benchmark.

A trial is done iff `rows/<stage>/<key>.parquet` exists. Rows are written once, atomically, by
the worker that ran the trial (not by the driver), so a killed driver loses nothing finished and
a rerun recomputes nothing stored. Errors, artifacts and resume checkpoints live beside the rows.
"""

from __future__ import annotations

import io
import json
import socket
import time
import traceback as tb_mod
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ddray.errors import InputError
from ddray.keys import config_key
from ddray.store.fs import Location, delete_dir, delete_file, list_files, open_location, read_bytes, write_bytes
from ddray.store.schema import ROW_SCHEMA, STAGES, Row


class Store:
    def __init__(self, uri: str):
        self.loc: Location = open_location(uri)
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

    def stored_spec(self) -> str | None:
        data = read_bytes(self.loc, self.path("spec.yaml"))
        return data.decode() if data is not None else None

    # ------------------------------------------------------------------ rows
    def done_keys(self, stages: Iterable[str] = STAGES) -> dict[str, set[str]]:
        return {s: {n[: -len(".parquet")] for n in list_files(self.loc, self.path("rows", s), ".parquet")} for s in stages}

    def stored_keys(self) -> set[str]:
        """Every stored key, whatever its stage (keys are unique across stages)."""
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

    def read_table(self) -> pa.Table:
        files = [self.path("rows", s, n) for s in STAGES for n in list_files(self.loc, self.path("rows", s), ".parquet")]
        if not files:
            return ROW_SCHEMA.empty_table()
        return pads.dataset(files, schema=ROW_SCHEMA, format="parquet", filesystem=self.loc.fs).to_table()

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
        names = list_files(self.loc, self.path("errors"), ".json")
        wanted = None if keys is None else {f"{k}.json" for k in keys}
        out = {}
        for n in names:
            if wanted is not None and n not in wanted:
                continue
            data = read_bytes(self.loc, self.path("errors", n))
            if data:
                out[n[:-5]] = json.loads(data)
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
