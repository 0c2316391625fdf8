"""One self-contained HTML page: inline CSS, tables, PNG figures as base64 data URIs.

Why no external assets: the page is meant to be mailed, attached to an issue or opened from an
object store; it must render the same with no network and no sibling files.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from ddray.report.display import DisplayTable

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:nth-child(-n+4){text-align:left}
caption{caption-side:bottom;text-align:left;font-size:12px;color:#555;padding-top:4px}
.fig{display:inline-block;margin:0.5em}.warn{color:#a40}
"""


def table_html(t: DisplayTable) -> str:
    """A titled <table> with escaped cells."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in t.frame.itertuples(index=False)
    )
    caption = f"<caption>{html.escape(t.note)}</caption>" if t.note else ""
    return f'<h2 id="{html.escape(t.name)}">{html.escape(t.title)}</h2>\n<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n'


def image_html(path: Path) -> str:
    """The PNG inlined as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(Path(path).stem)
    return f'<div class="fig"><img src="data:image/png;base64,{data}" alt="{alt}" title="{alt}"></div>\n'


def html_page(header: Sequence[str], tables: Sequence[DisplayTable], images: Sequence[Path]) -> str:
    """The whole page."""
    lines = "".join(
        f'<li class="{"warn" if h.startswith("warning") else ""}">{html.escape(h)}</li>' for h in header
    )
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ddray benchmark report</title>",
        f"<style>{CSS}</style></head><body>\n<h1>ddray benchmark report</h1>\n<ul>{lines}</ul>\n",
    ]
    parts += [table_html(t) for t in tables] or ["<p>no rows to report</p>\n"]
    if images:
        parts.append("<h2>Figures</h2>\n" + "".join(image_html(p) for p in images))
    parts.append("</body></html>\n")
    return "".join(parts)
