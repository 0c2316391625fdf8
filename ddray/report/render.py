"""Report output: terminal (rich), Markdown, CSV, JSON and one self-contained HTML page.

`render` returns a string for stdout; `write_report` writes every format plus the PNG figures
into a folder. Text formats show the display tables (units, n/a reasons); CSV and JSON carry the
raw numbers (fractions, scores in [0, 1] or the compat mode's raw values) for other tools.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from ddray.errors import InputError
from ddray.markdown import markdown_table
from ddray.report.build import Report, build_report
from ddray.report.coverage import incomplete_summary
from ddray.report.display import DisplayTable, display_tables
from ddray.report.explore import explore_data
from ddray.report.export import leaderboard_csv
from ddray.report.html import html_page
from ddray.report.latex import latex_unified
from ddray.report.plots import Figure, draw_figures

FORMATS = ("table", "md", "csv", "json", "html", "leaderboard", "latex")


def _as_report(report: Report | pd.DataFrame, build_kwargs: dict[str, Any]) -> Report:
    """Accept a Report, or rows to build one with the given build_report arguments."""
    if isinstance(report, Report):
        if build_kwargs:
            raise TypeError(f"{', '.join(build_kwargs)}: build arguments apply to rows, not to a built Report")
        return report
    return build_report(report, **build_kwargs)


def _header(report: Report) -> list[str]:
    st = report.settings
    lines = [f"λ = {st.lam:g}, γ = {st.gamma:g}, {st.ci:.0%} intervals: Student t over seeds, and a seed bootstrap of "
             f"{st.n_boot} resamples (seed {st.seed})"]
    if st.compat:
        lines.append(f"compat {st.compat}: percentages fed into the exponentials, as the package does; "
                     "scores are its raw numbers (≈ −0.1565 whenever e^α underflows), not comparable to ddray's.")
    cov = report.coverage
    missing = incomplete_summary(cov) if cov is not None and len(cov) else ""
    if missing:  # what the tables below cannot show: cells planned but not (fully) stored
        lines.append(f"warning: {missing} (each cell: the coverage grid in report.html, coverage.csv)")
    return lines + [f"warning: {w}" for w in report.warnings]


def rich_tables(report: Report) -> list[Table]:
    """rich Tables, for a CLI that prints them in colour."""
    out = []
    for t in display_tables(report):
        table = Table(title=t.title, caption=t.note or None, show_lines=False)
        for col in t.frame.columns:
            table.add_column(str(col), overflow="fold")
        for row in t.frame.itertuples(index=False):
            table.add_row(*[str(v) for v in row])
        out.append(table)
    return out


def render_table(report: Report, width: int = 220) -> str:
    """Plain-text terminal rendering of every display table."""
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    for line in _header(report):
        console.print(line, markup=False)
    if report.scores.empty and report.accuracy.empty:
        console.print("no rows to report", markup=False)
    for table in rich_tables(report):
        console.print(table)
    return console.export_text()


def markdown_section(t: DisplayTable) -> str:
    """One display table as a Markdown section: its title, the table, its note."""
    lines = [f"## {t.title}", "", markdown_table(t.frame.columns, t.frame.itertuples(index=False))]
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines) + "\n"


def render_md(report: Report) -> str:
    """The whole report as Markdown."""
    parts = ["# ddray benchmark report", ""] + [f"- {line}" for line in _header(report)] + [""]
    parts += [markdown_section(t) for t in display_tables(report)] or ["no rows to report\n"]
    return "\n".join(parts)


def render_csv(report: Report, table: str = "scores") -> str:
    """One raw table as CSV (scores by default; see Report.tables for the names)."""
    tables = report.tables()
    if table not in tables:
        raise InputError(f"unknown table '{table}'; known: {', '.join(tables)}", path="table")
    return tables[table].to_csv(index=False)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", double_precision=10, date_format="iso")) if len(frame) else []


def report_json(report: Report) -> dict[str, Any]:
    """The raw tables and settings as a JSON-ready dict (NaN becomes null)."""
    st = report.settings
    return {
        "settings": {"lambda": st.lam, "gamma": st.gamma, "compat": st.compat, "n_boot": st.n_boot, "seed": st.seed,
                     "ci": st.ci, "units": "accuracies are fractions in [0, 1]; scores are raw (display ×100 unless compat)"},
        "warnings": list(report.warnings),
        "tables": {name: _records(frame) for name, frame in report.tables().items()},
    }


def render_html(report: Report, figures: list[Figure] | None = None) -> str:
    """Self-contained HTML; figures are drawn into a temporary folder when not given."""
    if figures is None:
        with tempfile.TemporaryDirectory() as tmp:
            return render_html(report, draw_figures(report, tmp))
    return html_page(_header(report), display_tables(report), figures, explore_data(report), report.coverage)


def render(report: Report | pd.DataFrame, fmt: str = "table", *, table: str = "scores", **build_kwargs: Any) -> str:
    """The report as text in `fmt` (table, md, csv, json, html, leaderboard, latex) for stdout.

    `report` may be a Report or the rows themselves (then built with `build_kwargs`: lam, gamma,
    compat, n_boot, seed). `table` picks the raw table for csv.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}", path="format")
    rep = _as_report(report, build_kwargs)
    if fmt == "table":
        return render_table(rep)
    if fmt == "md":
        return render_md(rep)
    if fmt == "csv":
        return render_csv(rep, table)
    if fmt == "json":
        return json.dumps(report_json(rep), indent=1, ensure_ascii=False)
    if fmt == "leaderboard":
        return leaderboard_csv(rep)
    if fmt == "latex":
        return latex_unified(rep)
    return render_html(rep)


def write_report(report: Report | pd.DataFrame, out_dir: str | Path, **build_kwargs: Any) -> list[Path]:
    """Write report.txt, report.md, report.json, <table>.csv, leaderboard.csv (DD-Ranking's),
    report.tex (booktabs tables), figures/*.png and report.html.

    `report.html` embeds the tables and the PNGs (base64), so it is one file to send around.
    Returns every path written.
    """
    rep = _as_report(report, build_kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    put("report.txt", render_table(rep))
    put("report.md", render_md(rep))
    put("report.json", json.dumps(report_json(rep), indent=1, ensure_ascii=False))
    for name, frame in rep.tables().items():
        put(f"{name}.csv", frame.to_csv(index=False))
    put("leaderboard.csv", leaderboard_csv(rep))
    put("report.tex", latex_unified(rep))
    figures = draw_figures(rep, out / "figures")
    written += [f.path for f in figures]
    put("report.html", render_html(rep, figures))
    return written
