"""One self-contained HTML page to explore: λ/γ sliders, a live leaderboard, filters, sortable
tables, a coverage grid, each figure beside the table it shows, and downloads of the scores.

Why no external assets: the page is meant to be mailed, attached to an issue or opened from an
object store; it must render the same with no network and no sibling files. So the stylesheet
(`report.css`), the scripts (`export.js`, `explore.js`) and the data they recompute scores from
(`explore.explore_data`) are inlined, and the PNGs are base64 data URIs.

Filtering works on `data-<facet>` attributes (track, dataset, ipc, arch, labels, method) that
this module puts on sections, table rows, figures, header lines and coverage cells; an element
without one shows under every choice (the full-data row has no IPC). Without JavaScript the page
is its static tables at the built λ and γ: every control is marked `js-only` and hidden, and a
note says so. The page is a list of blocks (`html_page`), so another block (e.g. provenance)
is one more string in that list.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import Any

import pandas as pd

from ddray.report.display import DASH, DisplayTable, numeric_columns
from ddray.report.explore import data_script, script
from ddray.report.html_parts import column_tip, coverage_html, glossary_html
from ddray.report.plots import Figure

FACET_COLUMNS = {"dataset": "dataset", "ipc": "ipc", "arch": "arch", "labels": "L", "method": "method"}
"""Filter facet -> the display-table column that holds it."""
FILTERS = ("track", "dataset", "ipc", "arch", "labels", "method")
FIGURE_HOME = {"scores": "scores_{track}", "syn_vs_rdm": "accuracy_{track}", "time_vs_acc": "synth"}
"""Figure kind -> the table it stands beside (figures without their table go to a last section)."""
AT_BUILT_WEIGHTS = ("scores_", "rankings_", "kendall_", "tuning")
"""Tables computed at the report's λ and γ (bootstrap intervals, rank stability): the page's
sliders do not recompute them, and the page says so when the sliders have moved."""

_esc = html.escape


def _attrs(facets: dict[str, Any]) -> str:
    return "".join(f' data-{k}="{_esc(str(v))}"' for k, v in facets.items() if v not in (None, "", DASH))


def _th(col: str, numeric: bool, t: DisplayTable) -> str:
    cls = " ".join(c for c in ("" if numeric else "t", "detail" if col in t.detail else "") if c)
    attrs = (f' class="{cls}"' if cls else "") + (f' data-best="{t.best[col]}"' if col in t.best else "")
    tip = column_tip(str(col))
    return f"<th{attrs}{f' title={chr(34)}{_esc(tip)}{chr(34)}' if tip else ''}>{_esc(str(col))}</th>"


def table_html(t: DisplayTable) -> str:
    """A sortable <table> with escaped cells, each row tagged with its filter facets; detail
    columns carry class `detail` (folded in the page, shown without JavaScript)."""
    cols, numeric = list(t.frame.columns), numeric_columns(t)
    cls = [" ".join(c for c in ("" if n else "t", "detail" if col in t.detail else "") if c) for col, n in zip(cols, numeric)]
    td = [f' class="{c}"' if c else "" for c in cls]
    head = "".join(_th(col, n, t) for col, n in zip(cols, numeric))
    facet_idx = {f: cols.index(col) for f, col in FACET_COLUMNS.items() if col in cols}
    rows = []
    for row in t.frame.itertuples(index=False):
        # rdm and full rows are every method's reference: they show whichever method is chosen.
        tags = _attrs({f: row[i] for f, i in facet_idx.items() if not (f == "method" and row[i] in ("rdm", "full"))})
        rows.append(f"<tr{tags}>" + "".join(f"<td{c}>{_esc(str(v))}</td>" for c, v in zip(td, row)) + "</tr>")
    note = f'<p class="note">{_esc(t.note)}</p>' if t.note else ""
    klass = "sortable folded" if t.detail else "sortable"
    return f'<table class="{klass}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}'


def figure_html(fig: Figure) -> str:
    """The PNG inlined as a data URI, tagged with its facets for the filters."""
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    alt = _esc(fig.path.stem)
    return f'<div class="fig"{_attrs(fig.facets)}><img src="data:image/png;base64,{data}" alt="{alt}" title="{alt}"></div>'


def _home(fig: Figure) -> str:
    return FIGURE_HOME.get(fig.kind, "").format(**fig.facets)


FOLD = '<button class="fold js-only" type="button">show intervals</button>'


def section_id(name: str) -> str:
    """A section's HTML id: its table's name with anything outside [A-Za-z0-9_-] as '-' (CSS-safe)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _section(t: DisplayTable, figs: Sequence[Figure], badge: str, labels: dict[str, str]) -> str:
    at_built = badge if t.name.startswith(AT_BUILT_WEIGHTS) else ""
    side = f'<div class="figs">{"".join(figure_html(f) for f in figs)}</div>' if figs else ""
    facets = _attrs({"track": t.track, "labels": labels.get(t.track or "")})
    return (f'<section class="block filtered" id="{section_id(t.name)}"{facets}><h2>{_esc(t.title)}{at_built}'
            f'{FOLD if t.detail else ""}</h2><div class="row"><div class="tablewrap">{table_html(t)}</div>{side}</div></section>\n')


def _slider(name: str, label: str, value: float) -> str:
    step = "0.05" if abs(value * 20 - round(value * 20)) < 1e-9 else "any"
    return (f'<label><b>{label}</b><input type="range" id="{name}" min="0" max="1" step="{step}" value="{value:g}">'
            f'<output id="{name}-out">{value:.2f}</output></label>')


def _select(facet: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)
    return f'<label>{facet}<select data-facet="{facet}"><option value="">all</option>{opts}</select></label>'


def _facet_values(tables: Sequence[DisplayTable], data: dict[str, Any], cov: pd.DataFrame | None) -> dict[str, list[str]]:
    """Every value each filter can take: tables, scored cells and coverage (IPC numerically)."""
    found: dict[str, set[str]] = {f: set() for f in FILTERS}
    for t in tables:
        found["track"].add(t.track or "")
        for f, col in FACET_COLUMNS.items():
            if col in t.frame.columns:
                found[f] |= {str(v) for v in t.frame[col]}
    for c in data["cells"]:
        for f in found:
            found[f].add(str(c[f]))
    if cov is not None:
        for f in ("track", "dataset", "arch", "method", "ipc"):
            found[f] |= {str(v) for v in cov[f].dropna()}
    found["method"] -= {"rdm", "full"}
    out = {f: sorted(v - {"", DASH}, key=lambda s: (0, int(s), s) if s.isdigit() else (1, 0, s)) for f, v in found.items()}
    return {f: v for f, v in out.items() if len(v) > 1 or f == "ipc"}


def _controls(tables: Sequence[DisplayTable], data: dict[str, Any], cov: pd.DataFrame | None) -> str:
    st = data["settings"]
    parts = []
    if data["cells"]:
        parts += [_slider("lambda", "λ (LRS)", st["lambda"]), _slider("gamma", "γ (ARS)", st["gamma"]),
                  f'<button id="reset" type="button">reset to λ = {st["lambda"]:g}, γ = {st["gamma"]:g}</button>',
                  '<span class="sep"></span>']
    parts += [_select(f, v) for f, v in _facet_values(tables, data, cov).items()]
    if data["cells"]:
        parts += ['<span class="sep"></span><span class="dl">leaderboard at these λ, γ:'
                  '<button id="dl-csv" type="button">CSV</button><button id="dl-latex" type="button">LaTeX</button></span>']
    return f'<nav class="controls js-only">{"".join(parts)}</nav>\n'


def _leaderboard(data: dict[str, Any]) -> str:
    """The live table and the λ/γ sweep charts; explore.js fills both."""
    if not data["cells"]:
        return ""
    unit = "raw ddranking-0.2 numbers (percent inputs)" if data["settings"]["compat"] else "×100"
    formula = ("LRS = (e<sup>α</sup> − e<sup>−1</sup>)/(e − e<sup>−1</sup>), α = λ·IOR − (1 − λ)·HLR; "
               "ARS the same with β = γ·(syn − rdm)<sub>aug on</sub> + (1 − γ)·(syn − rdm)<sub>aug off</sub>. "
               f"Scores {unit}: mean ± std over seeds, recomputed in this page from every seed's HLR, IOR and gaps; "
               "ranks per dataset / IPC / arch (ties share the best rank). Click a header to sort (scores best first).")
    return ('<section class="block filtered js-only" id="leaderboard"><h2>Leaderboard: moves with λ and γ '
            f'<span id="live-scope"></span>{FOLD}</h2>'
            f'<p class="formula">{formula}</p><div class="row"><div class="tablewrap"><table id="live" class="folded"></table></div>'
            '<div class="figs" id="sweeps"></div></div></section>\n')


def _mentions(text: str, values: dict[str, list[str]]) -> dict[str, str]:
    """Facets a header line names (e.g. a warning about one dataset/arch), for the filters."""
    out = {}
    for facet in ("track", "dataset", "arch"):
        hits = [v for v in values.get(facet, []) if re.search(rf"(?<![\w:-]){re.escape(v)}(?![\w:-])", text)]
        if len(hits) == 1:
            out[facet] = hits[0]
    return out


def _header(header: Sequence[str], values: dict[str, list[str]]) -> str:
    items = "".join(f'<li class="{"warn" if h.startswith("warning") else ""}"{_attrs(_mentions(h, values))}>{_esc(h)}</li>'
                    for h in header)
    return f'<header><h1>ddray benchmark report</h1><ul class="meta">{items}</ul></header>\n'


def _noscript(data: dict[str, Any]) -> str:
    st = data["settings"]
    return (f'<noscript><p class="noscript">Without JavaScript this page shows its tables as built: λ = {st["lambda"]:g}, '
            f'γ = {st["gamma"]:g}. The sliders, filters, sorting and downloads need JavaScript; the same numbers at other '
            'weights: <code>ddray report STORE --lambda L --gamma G</code>.</p></noscript>\n')


def html_page(header: Sequence[str], tables: Sequence[DisplayTable], figures: Sequence[Figure], data: dict[str, Any],
              coverage: pd.DataFrame | None = None, blocks: Sequence[str] = ()) -> str:
    """The whole page: header, controls, coverage, key, live leaderboard, the display tables with
    their figures. `data` is `explore.explore_data(report)` (what the sliders recompute from);
    `blocks` are extra sections placed after the coverage grid (e.g. provenance)."""
    st = data["settings"]
    badge = (f'<span class="at-built" title="computed when the report was built (seed bootstrap); '
             f'rebuild with ddray report --lambda W --gamma G for other weights">as built: λ = {st["lambda"]:g}, '
             f'γ = {st["gamma"]:g}</span>')
    names = {t.name for t in tables}
    homeless = [f for f in figures if _home(f) not in names]
    labels = _track_labels(data)
    values = _facet_values(tables, data, coverage)
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>ddray benchmark report</title>',
        f"<style>{files('ddray.report').joinpath('report.css').read_text(encoding='utf-8')}</style></head><body>\n",
        _header(header, values), _noscript(data), _controls(tables, data, coverage), coverage_html(coverage),
        *blocks, glossary_html(sorted({t.track for t in tables if t.track})), _leaderboard(data),
    ]
    parts += [_section(t, [f for f in figures if _home(f) == t.name], badge, labels) for t in tables]
    if not tables:
        parts.append('<section class="block"><p>no rows to report</p></section>\n')
    if homeless:
        parts.append(f'<section class="block filtered"><h2>Figures</h2><div class="row">{"".join(figure_html(f) for f in homeless)}</div></section>\n')
    parts += [data_script(data), f"<script>\n{script()}</script>\n</body></html>\n"]
    return "".join(parts)


def _track_labels(data: dict[str, Any]) -> dict[str, str]:
    """Track -> its one label setting, where all its scored methods share one (a hard- or soft-label study)."""
    seen: dict[str, set[str]] = {}
    for c in data["cells"]:
        seen.setdefault(c["track"], set()).add(c["labels"])
    return {t: next(iter(v)) for t, v in seen.items() if len(v) == 1}
