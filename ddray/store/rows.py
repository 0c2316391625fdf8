"""Self-verifying rows: a row file counts as a finished trial only if it proves what it is.

A file name is a claim, not a proof: a truncated write, a Parquet file of another schema, a stray
`notes.parquet`, or a valid row copied under another key's name would otherwise count as done
forever and feed wrong numbers to the report. A row proves itself when

- its name is `<key>.parquet` with a well-formed key,
- it parses as Parquet with the identity columns of a row (`schema.REQUIRED`) and holds one row,
- that row's `key` is the file's key and its `stage` the folder's, and
- its `config_json` hashes to that key (the key *is* the hash of the resolved config).

A row of an older or newer layout is not a bad row: `conform` gives it today's columns (an older
row's missing ones get their default, a newer row's extra ones are ignored), so upgrading ddray,
or two drivers of different versions on one store, never quarantines or recomputes a finished trial.

Pure: bytes in, a table or a reason out; the store decides what to do with a bad row.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ddray.keys import KEY_LENGTH
from ddray.store.schema import REQUIRED, ROW_SCHEMA
from ddray.trials import json_config_key

_KEY = re.compile(rf"^[0-9a-f]{{{KEY_LENGTH}}}$")
SUFFIX = ".parquet"


@dataclass(frozen=True)
class BadRow:
    """A row file that does not prove its trial: where it is and why it fails."""

    stage: str
    name: str        # the file name in rows/<stage>/
    path: str        # the path in the store's filesystem
    reason: str

    @property
    def key(self) -> str | None:
        """The key the file name claims, when it is a well-formed one."""
        return key_of_name(self.name)

    @property
    def remedy(self) -> str:
        """What `ddray run` does about it."""
        rerun = f", and reruns trial {self.key}" if self.key else ""
        return f"`ddray run` moves it to quarantine/{rerun}"


def key_of_name(name: str) -> str | None:
    """The key a row file name claims (`<key>.parquet`), or None for any other name."""
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    return stem if _KEY.match(stem) else None


def json_key(config_json: str) -> str:
    """The key of a stored canonical config text (what `Trial.key` gave for that config)."""
    try:
        return json_config_key(config_json)
    except ValueError:
        return ""


def verify_row(stage: str, name: str, data: bytes) -> tuple[pa.Table | None, str | None]:
    """(the one-row table, None) when the file proves its trial, else (None, why not)."""
    key = key_of_name(name)
    if key is None:
        return None, f"not a row file name (expected <{KEY_LENGTH} hex digits>{SUFFIX})"
    table, problem = parse_row(data)
    if problem or table is None:
        return None, problem
    row = table.select(["key", "stage", "config_json"]).to_pylist()[0]
    problem = identity_problem(key, stage, row["key"], row["stage"], row["config_json"])
    if problem:
        return None, problem
    return table, None


def parse_row(data: bytes) -> tuple[pa.Table | None, str | None]:
    """A row file's bytes as one row of today's layout (`conform`), or why they are not one; its
    identity is not judged here (`verify_row` does, and the key migration judges it by both rules)."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        return None, f"not readable as Parquet ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    table, problem = conform(table)
    if problem or table is None:
        return None, problem
    if table.num_rows != 1:
        return None, f"holds {table.num_rows} rows; a row file holds one"
    return table, None


def identity_problem(key: str, stage: str, row_key: str | None, row_stage: str | None,
                     config_json: str | None) -> str | None:
    """Why a row's own columns do not prove that it is trial `key` of `stage`, or None when they do.

    The one check of a row's identity: row files (`verify_row`) and the rows of a compacted
    segment (`store/segments.py`) both pass through it, so an index never trusts more than a file.
    """
    if row_key != key:
        return f"holds the row of key {row_key}, not {key}"
    if row_stage != stage:
        return f"holds a {row_stage} row in rows/{stage}/"
    if not config_json or json_key(config_json) != key:
        return "its config does not hash to its key (edited, or written by something else)"
    return None


def _default_column(name: str, n: int, type_: pa.DataType) -> pa.Array:
    """What an older layout's row holds in a column added later: layout 1 for `schema_version`, else null."""
    if name == "schema_version":
        return pa.array([1] * n, type_)
    return pa.nulls(n, type_)


def conform(table: pa.Table) -> tuple[pa.Table | None, str | None]:
    """A row table of any layout as today's `ROW_SCHEMA`, or the reason it is not a ddray row.

    Missing optional columns get their default, unknown ones are dropped (a newer layout's file is
    left as it is), and a column whose values cannot be read as today's type names itself.
    """
    missing = [n for n in REQUIRED if n not in table.column_names]
    if missing:
        return None, f"not a ddray row: missing column(s) {', '.join(missing)}"
    columns = []
    for f in ROW_SCHEMA:
        if f.name not in table.column_names:
            columns.append(_default_column(f.name, table.num_rows, f.type))
            continue
        try:
            columns.append(table.column(f.name).cast(f.type))
        except (pa.ArrowException, ValueError) as e:
            return None, f"not a ddray row: column {f.name} ({table.schema.field(f.name).type}) is not {f.type} ({e})"
    return pa.Table.from_arrays(columns, schema=ROW_SCHEMA), None
