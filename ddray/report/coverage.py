"""What a store holds against what its specs plan, per report cell: the page's coverage grid.

Why in the report: a table of scores says nothing about the cells that are not in it. A reader
picking "IPC 50" must see that IPC 50 was planned and has no evaluation yet, not an empty table.
So every (track, dataset, arch, method, IPC) that the plan or the rows hold gets a state:
complete (every planned seed stored), partial (k of n), errored (a trial it needs failed; the
error's first line travels with it) or not run.

A seed of a cell is stored when every syn and rdm evaluation of that (cell, seed) is; it is
errored when one of them, or the synthesis it trains on, has a stored error. Pure: the planned
trials come in as identity rows (`ROW_SCHEMA`'s config columns, no results), and tracks get the
same recipe variants as the report's (`report/variants.py`), so the grid's tracks are its tracks.
"""

from __future__ import annotations

import pandas as pd

from ddray.report.variants import assign_variants

IDENTITY = ("key", "stage", "track", "cell", "method", "dataset", "ipc", "arch", "arm", "labels", "aug", "seed",
            "protocol_json", "teacher", "config_json")
"""The row columns a planned trial fills without running (the ones coverage and variants read)."""
CELL = ["track", "dataset", "arch", "method", "ipc"]
COLUMNS = [*CELL, "seeds_planned", "seeds_done", "seeds_errored", "status", "error"]
STATES = ("complete", "partial", "errored", "not run")


def first_line(text: object) -> str:
    """The first non-empty line of an error message (a traceback's last line is the message)."""
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _seed_states(ev: pd.DataFrame, synth_err: pd.Series) -> pd.DataFrame:
    """One row per (cell, seed): stored (every syn + matched rdm trial stored), error (first one)."""
    syn, rdm = ev[ev["arm"] == "syn"], ev[ev["arm"] == "rdm"]
    rdm_state = rdm.groupby(["track", "cell"], dropna=False).agg(rdm_stored=("stored", "all"), rdm_error=("error", "max"))
    syn = syn.join(rdm_state, on=["track", "cell"])
    syn["rdm_stored"] = syn["rdm_stored"].astype(object).where(syn["rdm_stored"].notna(), False).astype(bool)
    syn["synth_error"] = [synth_err.get((m, d, i, s), "") for m, d, i, s in
                          zip(syn["method"], syn["dataset"], syn["ipc"], syn["seed"])]
    syn["any_error"] = syn[["error", "rdm_error", "synth_error"]].fillna("").max(axis=1)
    syn["all_stored"] = syn["stored"] & syn["rdm_stored"]
    return syn.groupby([*CELL, "seed"], dropna=False).agg(stored=("all_stored", "all"), error=("any_error", "max")).reset_index()


def coverage(planned: pd.DataFrame, rows: pd.DataFrame, errors: dict[str, str]) -> pd.DataFrame:
    """Per (track, dataset, arch, method, IPC): seeds planned, stored and errored, the state, the first error.

    `planned` and `rows` hold `IDENTITY` columns (rows may hold more); `errors` maps a trial key
    to its error's first line. Rows of keys the plan lacks count too (a store without its spec
    shows what it holds, every cell complete).
    """
    stored = set(rows["key"])
    both = pd.concat([rows[list(IDENTITY)], planned[~planned["key"].isin(stored)][list(IDENTITY)]], ignore_index=True)
    both = both[both["stage"].isin(["eval", "full", "synth"])].drop_duplicates("key")
    if not (both["stage"] == "eval").any():
        return pd.DataFrame(columns=COLUMNS)
    both["stored"] = both["key"].isin(stored)
    both["error"] = both["key"].map(errors).where(~both["stored"]).fillna("")
    synth = both[(both["stage"] == "synth") & (both["error"] != "")]
    synth_err = synth.groupby(["method", "dataset", "ipc", "seed"])["error"].first()
    ev, _ = assign_variants(both[both["stage"].isin(["eval", "full"])])
    seeds = _seed_states(ev[ev["stage"] == "eval"], synth_err)
    g = seeds.groupby(CELL, dropna=False)
    out = g.agg(seeds_planned=("seed", "nunique"), seeds_done=("stored", "sum"),
                seeds_errored=("error", lambda e: int((e != "").sum())), error=("error", "max")).reset_index()
    out["ipc"] = out["ipc"].astype("Int64")
    out["status"] = "partial"
    out.loc[out["seeds_done"] == 0, "status"] = "not run"
    out.loc[out["seeds_errored"] > 0, "status"] = "errored"
    out.loc[out["seeds_done"] == out["seeds_planned"], "status"] = "complete"
    return out.sort_values(CELL).reset_index(drop=True)[COLUMNS]


def incomplete_summary(cov: pd.DataFrame) -> str:
    """One line: what is not complete ('' when everything planned is stored)."""
    todo = cov[cov["status"] != "complete"]
    if todo.empty:
        return ""
    parts = []
    for state in STATES[1:]:
        sub = todo[todo["status"] == state]
        if len(sub):
            ipcs = ", ".join(str(i) for i in sorted(sub["ipc"].dropna().unique()))
            methods = ", ".join(sorted(sub["method"].unique()))
            parts.append(f"{len(sub)} {state} (IPC {ipcs}; {methods})")
    return f"incomplete: {len(todo)} of {len(cov)} planned cells — " + "; ".join(parts)
