"""Content-keyed store of trial rows, errors, artifacts and checkpoints (see schema.py for the row contract).

The exports load on first use (PEP 562): `ddray.store.fs`, the filesystem layer that saved and
user-made distilled sets use too, must import without the Parquet and dataset modules of pyarrow
that only `Store` needs (`ddray validate` reads no rows).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ddray.store.checkpoint import StoreCheckpointer
    from ddray.store.schema import COLUMNS, ROW_SCHEMA, STAGES, Row
    from ddray.store.store import Store

_HOME = {"COLUMNS": "schema", "ROW_SCHEMA": "schema", "STAGES": "schema", "Row": "schema", "Store": "store",
         "StoreCheckpointer": "checkpoint"}
__all__ = ["COLUMNS", "ROW_SCHEMA", "STAGES", "Row", "Store", "StoreCheckpointer"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'ddray.store' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ddray.store.{_HOME[name]}"), name)
