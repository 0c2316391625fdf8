"""Provenance of every report cell: what produced its numbers, so a reader can check an entry back to its files.

Per cell (method or shared arm, dataset, IPC, arch) the rows behind it say: the keys of their
resolved configs, the engine and ddray versions that computed them, the digests of the inputs
they read (files sets, teacher and pretrained checkpoints, the real data), the hardware and
hosts, and when the first and last finished. Pure over the rows, like the rest of the report;
rows of layout 1 (before provenance columns) show what they have and null for the rest.
"""

from __future__ import annotations

import html
import json
from typing import Any

import pandas as pd

LEGACY_ENGINE = "1"
"""The engine version of rows that do not record one (layout 1): the engine ENGINE_VERSION started from."""


def engine_versions(rows: pd.DataFrame) -> pd.Series:
    """Each row's engine version, rows without one counted as the first."""
    if "engine_version" not in rows:
        return pd.Series(LEGACY_ENGINE, index=rows.index)
    return rows["engine_version"].astype(object).where(rows["engine_version"].notna(), LEGACY_ENGINE).astype(str)


def _cell(row: pd.Series) -> str:
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731 — pandas gives NaN or None for null
    who = text(row.get("method")) or text(row.get("arm")) or row["stage"]
    ipc = f"ipc{int(row['ipc'])}" if pd.notna(row.get("ipc")) else None
    return "/".join(str(p) for p in (who, row["dataset"], ipc, text(row.get("arch"))) if p is not None)


def _values(series: pd.Series) -> list[str]:
    return sorted({str(v) for v in series.dropna()})


def _inputs(texts: pd.Series) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for text in texts.dropna():
        for role, digest in json.loads(text).items():
            out.setdefault(role, set()).add(digest)
    return {role: sorted(d) for role, d in sorted(out.items())}


def provenance(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per cell of the rows (see the module doc), sorted by cell name."""
    if rows.empty:
        return []
    df = rows.copy()
    df["_cell"] = df.apply(_cell, axis=1)
    df["_engine"] = engine_versions(df)
    out = []
    for cell, part in df.groupby("_cell", sort=True):
        done = pd.to_datetime(part["finished_at"], utc=True, errors="coerce")
        col = lambda name: part[name] if name in part else pd.Series(dtype=object)  # noqa: E731
        out.append({
            "cell": cell, "rows": len(part), "keys": sorted(part["key"]),
            "engine_versions": _values(part["_engine"]), "ddray_versions": _values(col("ddray_version")),
            "inputs": _inputs(col("inputs_json")), "hardware": _values(col("hardware")) or _values(col("device")),
            "hosts": _values(col("hostname")),
            "first_finished": None if done.isna().all() else done.min().isoformat(),
            "last_finished": None if done.isna().all() else done.max().isoformat(),
        })
    return out


def mixed_engines(records: list[dict[str, Any]]) -> list[str]:
    """Cells whose rows come from more than one engine version (the report keeps them apart as tracks)."""
    return [r["cell"] for r in records if len(r["engine_versions"]) > 1]


def provenance_html(records: list[dict[str, Any]]) -> str:
    """A collapsed HTML block listing each cell's provenance (appended to report.html)."""
    if not records:
        return ""
    head = "<tr><th>cell</th><th>rows</th><th>engine</th><th>ddray</th><th>inputs</th><th>hardware</th><th>finished</th></tr>"
    body = []
    for r in records:
        inputs = "; ".join(f"{k}: {', '.join(v)}" for k, v in r["inputs"].items()) or "not recorded"
        when = r["first_finished"] if r["first_finished"] == r["last_finished"] else f"{r['first_finished']} … {r['last_finished']}"
        cells = [r["cell"], r["rows"], ", ".join(r["engine_versions"]), ", ".join(r["ddray_versions"]), inputs,
                 ", ".join(r["hardware"]), when]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ('<details class="provenance"><summary>Provenance: what produced each cell</summary>'
            f'<table>{head}{"".join(body)}</table></details>')
