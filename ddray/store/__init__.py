"""Content-keyed store of trial rows, errors, artifacts and checkpoints (see schema.py for the row contract)."""

from ddray.store.checkpoint import StoreCheckpointer
from ddray.store.schema import COLUMNS, ROW_SCHEMA, STAGES, Row
from ddray.store.store import Store

__all__ = ["COLUMNS", "ROW_SCHEMA", "STAGES", "Row", "Store", "StoreCheckpointer"]
