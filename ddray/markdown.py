"""GitHub-flavoured Markdown tables: the one renderer behind `ddray status --format md` and the report.

Pure and dependency-free on purpose: `ddray status` imports it without pandas or matplotlib,
which the report (and only the report) needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def cell(value: object) -> str:
    """A value as one table cell: a `|` would end the cell and a newline the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(head: Sequence[object], rows: Iterable[Sequence[object]], left: int | None = None) -> str:
    """The table's lines joined by newlines (no trailing newline).

    Columns from index `left` on are right-aligned (numbers); None leaves every column to the
    viewer's default alignment.
    """
    n = len(head)
    align = "|" + "---|" * n if left is None else "|" + "---|" * left + "---:|" * (n - left)
    lines = ["| " + " | ".join(map(cell, head)) + " |", align]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)
