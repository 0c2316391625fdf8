"""What a store holds against what its spec plans: done, errored and pending per stage.

`breakdown` refines the per-stage counts to one line per (stage, method or shared arm, IPC) with
the mean trial wall time of what is stored, so a long benchmark shows which cells are missing
and roughly how much trial time they still need (pending trials × the cell's mean).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


from ddray.errors import InputError
from ddray.plan import STAGES, Trial, make_plan
from ddray.spec import parse_spec
from ddray.store import Store
from ddray.yaml_strict import parse_yaml


@dataclass(frozen=True)
class CellStatus:
    """One line of the breakdown: a stage, the method (or the shared rdm/full arm) and the IPC."""

    stage: str
    who: str
    ipc: int | None
    done: int
    errored: int
    pending: int
    mean_wall_s: float | None      # over stored trials; None when none is stored
    wall_s: float                  # sum over stored trials

    @property
    def left_s(self) -> float | None:
        """Trial-seconds still needed at this cell's mean (not wall-clock: trials run in parallel)."""
        todo = self.errored + self.pending
        if not todo:
            return 0.0
        return None if self.mean_wall_s is None else todo * self.mean_wall_s


@dataclass
class StoreStatus:
    name: str | None
    counts: dict[str, dict[str, int]]
    errors: list[dict[str, Any]] = field(default_factory=list)
    cells: list[CellStatus] = field(default_factory=list)


def _who(method: str | None, arm: str | None) -> str:
    """rdm and full trials are shared by every method, so they go by arm; the rest by method."""
    if arm in ("rdm", "full") or not method:
        return str(arm or "?")
    return str(method)


def trial_cell(config: Mapping[str, Any]) -> tuple[str, int | None]:
    """(method or shared arm, IPC) of a planned trial."""
    method = config.get("method")
    name = method.get("name") if isinstance(method, Mapping) else method
    return _who(name, config.get("arm")), config.get("ipc")


def _row_cell(row: Mapping[str, Any]) -> tuple[str, int | None]:
    """(method or shared arm, IPC) of a stored row, whose missing values may be NaN."""
    method, ipc = row.get("method"), row.get("ipc")
    return _who(method if _present(method) else None, row.get("arm")), int(ipc) if _present(ipc) else None


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def breakdown(plan_trials: Iterable[Trial], rows: Iterable[Mapping[str, Any]],
              errored: Iterable[str]) -> list[CellStatus]:
    """Per-cell counts from the planned trials and the stored rows (which may hold unplanned keys)."""
    rows = list(rows)
    done = {r["key"] for r in rows}
    errored = set(errored) - done
    cells: dict[tuple[str, str, int | None], dict[str, Any]] = {}

    def cell(stage: str, who_ipc: tuple[str, int | None]) -> dict[str, Any]:
        return cells.setdefault((stage, *who_ipc), {"done": 0, "errored": 0, "pending": 0, "walls": []})

    for r in rows:
        c = cell(r["stage"], _row_cell(r))
        c["done"] += 1
        if _present(r.get("wall_s")):
            c["walls"].append(float(r["wall_s"]))
    for t in plan_trials:
        if t.key not in done:
            cell(t.stage, trial_cell(t.config))["errored" if t.key in errored else "pending"] += 1
    order = {s: i for i, s in enumerate(STAGES)}
    out = []
    for (stage, who, ipc), c in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2] or 0)):
        walls = c["walls"]
        out.append(CellStatus(stage, who, ipc, c["done"], c["errored"], c["pending"],
                              sum(walls) / len(walls) if walls else None, sum(walls)))
    return out


def store_status(uri: str, by_method: bool = False) -> StoreStatus:
    """Counts per stage; with `by_method` also the per-cell breakdown, which reads every stored row."""
    store = Store(uri)
    text = store.stored_spec()
    if text is None:
        raise InputError(f"no ddray store at '{uri}' (no spec.yaml): run `ddray run SPEC --store {uri}` first", path="store")
    spec = parse_spec(parse_yaml(text, f"{uri}: spec.yaml"))
    plan = make_plan(spec)
    done = store.done_keys()
    errors = store.errors_of()
    counts = {}
    for stage in STAGES:
        keys = {t.key for t in plan.stage(stage)} | done[stage]
        d = len(done[stage])
        e = len([k for k in keys if k in errors and k not in done[stage]])
        counts[stage] = {"done": d, "errored": e, "pending": len(keys) - d - e}
    failed = [errors[k] for k in sorted(errors) if not any(k in done[s] for s in STAGES)]
    if not by_method:
        return StoreStatus(spec.name, counts, failed)
    rows = store.read_table().select(["key", "stage", "method", "arm", "ipc", "wall_s"]).to_pylist()
    return StoreStatus(spec.name, counts, failed, breakdown(plan.trials, rows, errors))
