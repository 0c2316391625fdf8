"""Unified benchmark report: robust scores (HLR, IOR, LRS, ARS), rankings, tables, plots, HTML.

Pure over a DataFrame of store rows (`ddray.store.schema.ROW_SCHEMA` columns, one per trial):

    report = build_report(rows, lam=0.5, gamma=0.5, compat=None, n_boot=1000, seed=0)
    print(render(report, "table"))          # or "md", "csv", "json", "html", "leaderboard", "latex"
    write_report(report, "STORE/report")    # every format + PNGs + a self-contained report.html
"""

from __future__ import annotations

from ddray.report.aggregate import Settings
from ddray.report.build import Report, build_report
from ddray.report.metrics import COLLAPSED_SCORE, COMPAT_MODES, ars, hlr, ior, lrs
from ddray.report.render import FORMATS, render, report_json, rich_tables, write_report

__all__ = [
    "COLLAPSED_SCORE", "COMPAT_MODES", "FORMATS", "Report", "Settings", "ars", "build_report", "hlr", "ior", "lrs",
    "render", "report_json", "rich_tables", "write_report",
]
