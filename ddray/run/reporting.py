"""`ddray report`: read a store's rows, build the report, print or write it."""

from __future__ import annotations

from pathlib import Path


from ddray.errors import InputError
from ddray.spec import parse_spec
from ddray.store import Store
from ddray.yaml_strict import parse_yaml


def _console():
    import sys

    from rich.console import Console

    # Wide tables: a pipe or CI log is no 80-column terminal.
    return Console(width=None if sys.stdout.isatty() else 180)


def report_store(uri: str, *, fmt: str = "table", out_dir: Path | None = None, lam: float | None = None,
                 gamma: float | None = None, compat: str | None = None) -> str | None:
    """Text to print (None when it was shown as rich tables or written to `out_dir`)."""
    from ddray.report import build_report, render, rich_tables, write_report

    store = Store(uri)
    text = store.stored_spec()
    if text is None:
        raise InputError(f"no ddray store at '{uri}' (no spec.yaml)", path="store")
    scores = parse_spec(parse_yaml(text, f"{uri}: spec.yaml")).scores
    lam = scores.lambda_ if lam is None else lam
    gamma = scores.gamma if gamma is None else gamma
    compat = (None if scores.compat == "none" else scores.compat) if compat is None else (None if compat == "none" else compat)
    rows = store.read_rows()
    if rows.empty:
        raise InputError(f"store '{uri}' has no finished trials yet: run `ddray run` first", path="store")
    report = build_report(rows, lam=lam, gamma=gamma, compat=compat)
    if out_dir is not None:
        paths = write_report(report, out_dir)
        console = _console()
        for table in rich_tables(report):
            console.print(table)
        console.print(f"wrote {len(paths)} files to {out_dir} (open {Path(out_dir) / 'report.html'})")
        return None
    if fmt == "table":
        console = _console()
        for table in rich_tables(report):
            console.print(table)
        return None
    return render(report, fmt)
