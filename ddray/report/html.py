"""One self-contained HTML page to explore: λ/γ sliders, a live leaderboard, filters, sortable
tables, each figure beside the table it shows.

Why no external assets: the page is meant to be mailed, attached to an issue or opened from an
object store; it must render the same with no network and no sibling files. So the stylesheet
(`report.css`), the script (`explore.js`) and the data it recomputes scores from
(`explore.explore_data`) are inlined, and the PNGs are base64 data URIs.

Filtering works on `data-<facet>` attributes (track, dataset, ipc, arch, labels) that this module
puts on table rows, figures and sections; an element without one shows under every choice (the
full-data row has no IPC).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import Any

from ddray.report.display import DASH, DisplayTable, numeric_columns
from ddray.report.explore import data_script, script
from ddray.report.frame import TRACKS
from ddray.report.plots import Figure

FACET_COLUMNS = {"dataset": "dataset", "ipc": "ipc", "arch": "arch", "labels": "L"}
"""Filter facet -> the display-table column that holds it."""
FIGURE_HOME = {"scores": "scores_{track}", "syn_vs_rdm": "accuracy_{track}", "time_vs_acc": "synth"}
"""Figure kind -> the table it stands beside (figures without their table go to a last section)."""
AT_BUILT_WEIGHTS = ("scores_", "rankings_", "kendall_", "tuning")
"""Tables computed at the report's λ and γ (bootstrap intervals, rank stability): the page's
sliders do not recompute them, and the page says so when the sliders have moved."""

_esc = html.escape


def _attrs(facets: dict[str, Any]) -> str:
    return "".join(f' data-{k}="{_esc(str(v))}"' for k, v in facets.items() if v not in (None, "", DASH))


def _track(table: DisplayTable) -> str | None:
    """The track a per-track table shows (its name ends in `_<track>`), else None."""
    tail = table.name.rsplit("_", 1)[-1]
    return tail if tail in TRACKS else None


def table_html(t: DisplayTable) -> str:
    """A sortable <table> with escaped cells, each row tagged with its filter facets."""
    cls = ["" if n else ' class="t"' for n in numeric_columns(t)]
    head = "".join(f"<th{c}>{_esc(str(col))}</th>" for c, col in zip(cls, t.frame.columns))
    facet_idx = {f: list(t.frame.columns).index(col) for f, col in FACET_COLUMNS.items() if col in t.frame.columns}
    rows = []
    for row in t.frame.itertuples(index=False):
        tags = _attrs({f: row[i] for f, i in facet_idx.items()})
        rows.append(f"<tr{tags}>" + "".join(f"<td{c}>{_esc(str(v))}</td>" for c, v in zip(cls, row)) + "</tr>")
    note = f'<p class="note">{_esc(t.note)}</p>' if t.note else ""
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}'


def figure_html(fig: Figure) -> str:
    """The PNG inlined as a data URI, tagged with its facets for the filters."""
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    alt = _esc(fig.path.stem)
    return f'<div class="fig"{_attrs(fig.facets)}><img src="data:image/png;base64,{data}" alt="{alt}" title="{alt}"></div>'


def _home(fig: Figure) -> str:
    return FIGURE_HOME.get(fig.kind, "").format(**fig.facets)


def _section(t: DisplayTable, figs: Sequence[Figure], badge: str) -> str:
    track = _track(t)
    at_built = badge if t.name.startswith(AT_BUILT_WEIGHTS) else ""
    side = f'<div class="figs">{"".join(figure_html(f) for f in figs)}</div>' if figs else ""
    return (f'<section class="block" id="{_esc(t.name)}"{_attrs({"track": track})}><h2>{_esc(t.title)}{at_built}</h2>'
            f'<div class="row"><div class="tablewrap">{table_html(t)}</div>{side}</div></section>\n')


def _slider(name: str, label: str, value: float) -> str:
    step = "0.05" if abs(value * 20 - round(value * 20)) < 1e-9 else "any"
    return (f'<label><b>{label}</b><input type="range" id="{name}" min="0" max="1" step="{step}" value="{value:g}">'
            f'<output id="{name}-out">{value:.2f}</output></label>')


def _select(facet: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
    return f'<label>{facet}<select data-facet="{facet}"><option value="">all</option>{opts}</select></label>'


def _facet_values(tables: Sequence[DisplayTable], data: dict[str, Any]) -> dict[str, list[str]]:
    """Every value each filter can take, from the tables and the scored cells (IPC numerically)."""
    found: dict[str, set[str]] = {f: set() for f in ("track", *FACET_COLUMNS)}
    for t in tables:
        found["track"].add(_track(t) or "")
        for f, col in FACET_COLUMNS.items():
            if col in t.frame.columns:
                found[f] |= {str(v) for v in t.frame[col]}
    for c in data["cells"]:
        for f in found:
            found[f].add(str(c[f]))
    out = {f: sorted(v - {"", DASH}, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s)) for f, v in found.items()}
    if len(out["track"]) < 2:
        del out["track"]
    return out


def _controls(tables: Sequence[DisplayTable], data: dict[str, Any]) -> str:
    st = data["settings"]
    parts = []
    if data["cells"]:
        parts += [_slider("lambda", "λ (LRS)", st["lambda"]), _slider("gamma", "γ (ARS)", st["gamma"]),
                  f'<button id="reset" type="button">reset to λ = {st["lambda"]:g}, γ = {st["gamma"]:g}</button>',
                  '<span class="sep"></span>']
    parts += [_select(f, v) for f, v in _facet_values(tables, data).items()]
    return f'<nav class="controls">{"".join(parts)}</nav>\n'


def _leaderboard(data: dict[str, Any]) -> str:
    """The live table and the λ/γ sweep charts; explore.js fills both."""
    if not data["cells"]:
        return ""
    unit = "raw ddranking-0.2 numbers (percent inputs)" if data["settings"]["compat"] else "×100"
    formula = ("LRS = (e<sup>α</sup> − e<sup>−1</sup>)/(e − e<sup>−1</sup>), α = λ·IOR − (1 − λ)·HLR; "
               "ARS the same with β = γ·(syn − rdm)<sub>aug on</sub> + (1 − γ)·(syn − rdm)<sub>aug off</sub>. "
               f"Scores {unit}: mean ± std over seeds, recomputed in this page from every seed's HLR, IOR and gaps; "
               "ranks per dataset / IPC / arch (ties share the best rank). Click a header to sort.")
    return ('<section class="block" id="leaderboard"><h2>Leaderboard: moves with λ and γ <span id="live-scope"></span></h2>'
            f'<p class="formula">{formula}</p><div class="row"><div class="tablewrap"><table id="live"></table></div>'
            '<div class="figs" id="sweeps"></div></div></section>\n')


def html_page(header: Sequence[str], tables: Sequence[DisplayTable], figures: Sequence[Figure], data: dict[str, Any]) -> str:
    """The whole page: header, controls, live leaderboard, the display tables with their figures.

    `data` is `explore.explore_data(report)`: what the sliders recompute scores from.
    """
    st = data["settings"]
    lines = "".join(f'<li class="{"warn" if h.startswith("warning") else ""}">{_esc(h)}</li>' for h in header)
    badge = (f'<span class="at-built" title="computed when the report was built (seed bootstrap); '
             f'rebuild with ddray report --lambda W --gamma G for other weights">as built: λ = {st["lambda"]:g}, '
             f'γ = {st["gamma"]:g}</span>')
    names = {t.name for t in tables}
    homeless = [f for f in figures if _home(f) not in names]
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>ddray benchmark report</title>',
        f"<style>{files('ddray.report').joinpath('report.css').read_text(encoding='utf-8')}</style></head><body>\n",
        f'<header><h1>ddray benchmark report</h1><ul class="meta">{lines}</ul></header>\n',
        _controls(tables, data),
        _leaderboard(data),
    ]
    parts += [_section(t, [f for f in figures if _home(f) == t.name], badge) for t in tables]
    if not tables:
        parts.append('<section class="block"><p>no rows to report</p></section>\n')
    if homeless:
        parts.append(f'<section class="block"><h2>Figures</h2><div class="row">{"".join(figure_html(f) for f in homeless)}</div></section>\n')
    parts += [data_script(data), f"<script>\n{script()}</script>\n</body></html>\n"]
    return "".join(parts)
