"""`ddray report`: read a store's rows, build the report, print or write it."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ddray.benchmark import Benchmark, open_benchmark
from ddray.errors import InputError
from ddray.spec import ScoreWeights

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

DATA_ONLY_FORMATS = ("csv", "leaderboard", "latex")  # their text is data: rows left out are named on stderr


def _console():
    import sys

    from rich.console import Console

    # Wide tables: a pipe or CI log is no 80-column terminal.
    return Console(width=None if sys.stdout.isatty() else 180)


def store_coverage(bench: Benchmark, table: pa.Table) -> pd.DataFrame:
    """The coverage grid of a store: its specs' planned trials against its rows and stored errors."""
    import pandas as pd

    from ddray.report.coverage import IDENTITY, coverage, first_line
    from ddray.trials import identity_columns

    trials = bench.plan.trials if bench.plan is not None else ()
    planned = pd.DataFrame([identity_columns(t.config, t.key) for t in trials], columns=list(IDENTITY))
    errors = {k: first_line(e.get("exception")) for k, e in bench.store.errors_of().items()}
    return coverage(planned, table.select(list(IDENTITY)).to_pandas(), errors)


def report_store(uri: str, *, fmt: str = "table", out_dir: Path | None = None, lam: float | None = None,
                 gamma: float | None = None, compat: str | None = None) -> str | None:
    """Text to print (None when it was shown as rich tables or written to `out_dir`)."""
    from ddray.report import build_report, render, rich_tables, write_report

    bench = open_benchmark(uri, require_spec=False)
    scores = bench.spec.scores if bench.spec is not None else ScoreWeights()
    lam = scores.lambda_ if lam is None else lam
    gamma = scores.gamma if gamma is None else gamma
    compat = (None if scores.compat == "none" else scores.compat) if compat is None else (None if compat == "none" else compat)
    scan = bench.store.scan()
    if not scan.table.num_rows:
        what = "no finished trials yet: run `ddray run` first" if not scan.bad else \
            f"no valid rows ({len(scan.bad)} bad row file(s), e.g. {scan.bad[0].path}: {scan.bad[0].reason})"
        raise InputError(f"store '{uri}' has {what}", path="store")
    report = build_report(scan.table.to_pandas(), lam=lam, gamma=gamma, compat=compat)
    notes = [f"left out {b.path}: {b.reason} ({b.remedy})" for b in scan.bad]
    if bench.spec is None:
        notes.append("the store has no spec.yaml: default weights (λ = γ = 0.5) unless --lambda/--gamma are given")
    report = replace(report, warnings=(*notes, *report.warnings), coverage=store_coverage(bench, scan.table))
    if out_dir is not None or fmt == "table":
        console = _console()
        for w in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True, highlight=False)
        for table in rich_tables(report):
            console.print(table)
        if out_dir is not None:
            paths = write_report(report, out_dir)
            console.print(f"wrote {len(paths)} files to {out_dir} (open {Path(out_dir) / 'report.html'})")
        return None
    if fmt in DATA_ONLY_FORMATS:  # a CSV or LaTeX table has no place to name what it leaves out: stderr
        for note in notes[:len(scan.bad)]:
            print(f"ddray report: {note}", file=sys.stderr, flush=True)
    return render(report, fmt)
