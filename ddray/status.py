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
from ddray.store.rows import BadRow
from ddray.stored import open_benchmark
from ddray.trials import STAGES, Trial


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
    bad: list[BadRow] = field(default_factory=list)     # row files that do not prove their trial
    planned: bool = True                                 # False: no spec.yaml, so pending is unknown


def _who(method: str | None, arm: str | None) -> str:
    """rdm and full trials are shared by every method, so they go by arm; the rest by method."""
    if arm in ("rdm", "full") or not method:
        return str(arm or "?")
    return str(method)


def trial_cell(trial: Trial) -> tuple[str, int | None]:
    """(method or shared arm, IPC) of a planned trial."""
    c = trial.config
    method = getattr(c, "method", None)
    return _who(method.name if method else None, getattr(c, "arm", None)), getattr(c, "ipc", None)


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
            cell(t.stage, trial_cell(t))["errored" if t.key in errored else "pending"] += 1
    order = {s: i for i, s in enumerate(STAGES)}
    out = []
    for (stage, who, ipc), c in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2] or 0)):
        walls = c["walls"]
        out.append(CellStatus(stage, who, ipc, c["done"], c["errored"], c["pending"],
                              sum(walls) / len(walls) if walls else None, sum(walls)))
    return out


def store_status(uri: str, by_method: bool = False) -> StoreStatus:
    """Counts per stage (and the per-cell breakdown with `by_method`), from the verified rows.

    Bad row files are listed, not counted; a store without its spec.yaml still shows what is done.
    """
    bench = open_benchmark(uri, require_spec=False)
    scan = bench.store.scan()
    if bench.spec is None and not scan.table.num_rows and not scan.bad:
        raise InputError(f"no ddray store at '{uri}' (no spec.yaml, no rows): run `ddray run SPEC --store {uri}` first",
                         path="store")
    done, errors = scan.keys, bench.store.errors_of()
    planned = bench.plan.trials if bench.plan is not None else ()
    counts = {}
    for stage in STAGES:
        keys = {t.key for t in planned if t.stage == stage} | done[stage]
        d = len(done[stage])
        e = len([k for k in keys if k in errors and k not in done[stage]])
        counts[stage] = {"done": d, "errored": e, "pending": len(keys) - d - e}
    failed = [errors[k] for k in sorted(errors) if not any(k in done[s] for s in STAGES)]
    name = bench.name
    st = StoreStatus(name, counts, failed, bad=scan.bad, planned=bench.spec is not None)
    if by_method:
        rows = scan.table.select(["key", "stage", "method", "arm", "ipc", "wall_s"]).to_pylist()
        st.cells = breakdown(planned, rows, errors)
    return st
