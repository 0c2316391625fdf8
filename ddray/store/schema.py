"""The Arrow schema of one stored trial row (a contract: reports and users read these columns).

One row per finished trial, in `rows/<stage>/<key>.parquet`. Accuracies are fractions in [0, 1].
Null means "does not apply" (e.g. `ipc` of a full-data trial), never "zero".

Layouts evolve by adding columns at the end, never by removing or retyping one: a row records the
layout it was written with (`schema_version`; rows without the column are layout 1), and a reader
gives the columns an older row lacks their default (`store/rows.py: conform`) and ignores the ones
a newer row adds, so a store written by any version stays readable by any other. Layouts:
1. the 29 columns up to `finished_at` (2026-12-06; fixtures in tests/fixtures/rows/v1);
2. adds `schema_version`, `engine_version` (`ddray.engine.ENGINE_VERSION`), `inputs_json` (digests
   of the files and data the trial read, `ddray.digests`), `hardware` (CPU model or GPU name) and
   `best_epoch` (the epoch whose test accuracy is `top1`; `checkpoint: best` picks it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import pyarrow as pa

from ddray.trials import STAGES

__all__ = ["COLUMNS", "ROW_SCHEMA", "STAGES", "Row"]

ROW_SCHEMA = pa.schema(
    [
        # identity
        pa.field("key", pa.string(), nullable=False),      # hash of the resolved config
        pa.field("stage", pa.string(), nullable=False),    # full | synth | search | eval (search: top1 is validation accuracy)
        pa.field("track", pa.string(), nullable=False),    # fixed | tuned
        pa.field("cell", pa.string()),                      # comparison cell: syn and rdm rows of the same cell are compared
        # resolved config
        pa.field("method", pa.string()),                    # null for rdm/full rows (shared by all methods)
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("ipc", pa.int64()),
        pa.field("arch", pa.string()),
        pa.field("arm", pa.string()),                       # syn | rdm | full (null for synth rows)
        pa.field("labels", pa.string()),                    # hard | soft | hybrid
        pa.field("aug", pa.bool_()),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("protocol", pa.string()),                  # preset name
        pa.field("protocol_json", pa.string()),             # resolved knobs (canonical JSON)
        pa.field("teacher", pa.string()),                   # teacher key(s), comma-joined, or null
        pa.field("config_json", pa.string(), nullable=False),
        # results
        pa.field("status", pa.string(), nullable=False),   # ok | diverged
        pa.field("top1", pa.float64()),
        pa.field("top5", pa.float64()),
        pa.field("loss", pa.float64()),
        pa.field("epochs_run", pa.int64()),
        pa.field("wall_s", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("synth_s", pa.float64()),                  # time-to-synthesize of the distilled set (syn and synth rows)
        pa.field("synth_device", pa.string()),
        # provenance
        pa.field("ddray_version", pa.string()),
        pa.field("torch_version", pa.string()),
        pa.field("hostname", pa.string()),
        pa.field("finished_at", pa.timestamp("s", tz="UTC")),
        # layout 2
        pa.field("schema_version", pa.int64()),             # the row layout; null (absent) = 1
        pa.field("engine_version", pa.string()),            # ddray.engine.ENGINE_VERSION: rows of two engines are not averaged
        pa.field("inputs_json", pa.string()),               # role -> digest of each input read (files, teachers, data)
        pa.field("hardware", pa.string()),                  # CPU model, or GPU name, that computed the numbers
        pa.field("best_epoch", pa.int64()),                 # epoch whose test accuracy is top1 (checkpoint: best picks it)
    ]
)

SCHEMA_VERSION = 2
"""The layout this version writes (see the module doc for the list)."""

REQUIRED = ("key", "stage", "track", "dataset", "seed", "config_json", "status")
"""Columns without which a row cannot say what it is or how it ended (every layout has them)."""

COLUMNS = tuple(ROW_SCHEMA.names)


@dataclass(frozen=True)
class Row:
    """One stored trial, typed: exactly the columns of ROW_SCHEMA, in its order (a test checks it).

    Built in one place (`ddray.run.execute.make_row`) from the typed trial and its outcome, so
    no column is guessed from a dict and patched afterwards.
    """

    key: str
    stage: str
    track: str
    cell: str | None
    method: str | None
    dataset: str
    ipc: int | None
    arch: str | None
    arm: str | None
    labels: str | None
    aug: bool | None
    seed: int
    protocol: str | None
    protocol_json: str | None
    teacher: str | None
    config_json: str
    status: str
    top1: float | None
    top5: float | None
    loss: float | None
    epochs_run: int | None
    wall_s: float | None
    device: str | None
    synth_s: float | None
    synth_device: str | None
    ddray_version: str | None
    torch_version: str | None
    hostname: str | None
    finished_at: datetime | None
    schema_version: int | None = SCHEMA_VERSION
    engine_version: str | None = None
    inputs_json: str | None = None
    hardware: str | None = None
    best_epoch: int | None = None

    def record(self) -> dict[str, Any]:
        """The row as a column -> value dict (what Arrow writes)."""
        return asdict(self)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
