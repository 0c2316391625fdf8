"""The Arrow schema of one stored trial row (a contract: reports and users read these columns).

One row per finished trial, in `rows/<stage>/<key>.parquet`. Accuracies are fractions in [0, 1].
Null means "does not apply" (e.g. `ipc` of a full-data trial), never "zero".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

import pyarrow as pa

from ddray.trials import STAGES

__all__ = ["COLUMNS", "LATER_COLUMNS", "ROW_SCHEMA", "STAGES", "Row"]

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
        pa.field("best_epoch", pa.int64()),                 # epoch whose test accuracy is top1 (checkpoint: best picks it)
        pa.field("wall_s", pa.float64()),
        pa.field("device", pa.string()),
        pa.field("synth_s", pa.float64()),                  # time-to-synthesize of the distilled set (syn and synth rows)
        pa.field("synth_device", pa.string()),
        # provenance
        pa.field("ddray_version", pa.string()),
        pa.field("torch_version", pa.string()),
        pa.field("hostname", pa.string()),
        pa.field("finished_at", pa.timestamp("s", tz="UTC")),
    ]
)

COLUMNS = tuple(ROW_SCHEMA.names)
# Columns added after rows were stored: a stored row without one reads as null there (never as a bad row).
LATER_COLUMNS = frozenset({"best_epoch"})


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
    best_epoch: int | None
    wall_s: float | None
    device: str | None
    synth_s: float | None
    synth_device: str | None
    ddray_version: str | None
    torch_version: str | None
    hostname: str | None
    finished_at: datetime | None

    def record(self) -> dict[str, Any]:
        """The row as a column -> value dict (what Arrow writes)."""
        return asdict(self)

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
