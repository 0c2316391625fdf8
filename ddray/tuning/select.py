"""Selection of a cell's winning config: a pure function over its stored search rows.

Pure so that the choice is the same in every process and on every retry (a tuned trial resumed
from its checkpoint must keep training the config it started with), and testable without Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ddray.keys import canonical_json


def search_candidates(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """(key, knobs, val_top1, status) of search rows (store rows: `config_json` holds the knobs)."""
    out = []
    for r in rows:
        cfg = json.loads(r["config_json"])
        out.append({"key": r["key"], "knobs": cfg["knobs"], "val_top1": r.get("top1"), "status": r["status"]})
    return out


def select_best(candidates: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The candidate with the best validation top-1; None when every one diverged.

    Ties go to the first knobs in canonical-JSON order: deterministic whatever order the rows
    were stored or listed in.
    """
    ok = [c for c in candidates if c["status"] == "ok" and c["val_top1"] is not None]
    if not ok:
        return None
    return dict(min(ok, key=lambda c: (-float(c["val_top1"]), canonical_json(c["knobs"]))))
