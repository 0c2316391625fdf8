"""Parts of report.html that are not a display table: the coverage grid and the key of terms.

Kept apart from `html.py` (which lays the page out) so each part is one function with one job,
and a new block (e.g. provenance) is one more function that the page lists.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

import pandas as pd

from ddray.report.coverage import incomplete_summary
from ddray.report.tracks import TRACK_KEY, track_title

_esc = html.escape

GLOSSARY = {
    "L": "label setting of the method's distilled set: hard (one-hot), soft (a teacher's logits) or hybrid",
    "seeds": "seeds that scored; '2 of 3': fewer than the spec plans (see the coverage grid)",
    "LRS": "label-robust score: N(λ·IOR − (1 − λ)·HLR), N(x) = (eˣ − e⁻¹)/(e − e⁻¹); higher is better",
    "ARS": "augmentation-robust score: N(γ·gap with augmentation + (1 − γ)·gap without), gap = Acc(syn) − Acc(rdm); higher is better",
    "HLR": "hard-label recovery: Acc(full, hard) − Acc(syn, hard), in points; lower is better",
    "IOR": "improvement over random: Acc(syn, L) − Acc(rdm, L), in points; higher is better",
    "(mean acc)": "the score of the seeds' mean accuracies (not the mean of per-seed scores)",
    "t": "Student t-interval of the mean over seeds (n/a below 2 seeds)",
    "seed bootstrap": "percentile interval over resamples of the seeds: their spread, not a confidence interval at 3 seeds",
    "rank": "1 = best within its dataset, IPC and arch; ties share the best rank",
    "over": "over λ, over γ: min–max rank when λ (or γ) takes 0, .25, .5, .75, 1",
    "Acc": "top-1 test accuracy of a student trained on the set, % (mean ± std over seeds)",
    "aug on": "student trained with the protocol's augmentation; aug off: without",
    "rdm": "class-balanced random subset of the real train split, same IPC: the baseline every method must beat",
    "full": "student trained on the whole train split (hard labels): the ceiling behind HLR",
    "IPC": "images per class of the distilled set",
    "Kendall τ": "agreement of the accuracy and LRS rankings (1 = same order)",
    "synth s": "median wall time to synthesize one set (0 s: no synthesis, e.g. random selection)",
}
"""Every column and row name the page shows, for its key and the headers' tooltips."""


def column_tip(column: str) -> str:
    """The glossary entry a column header points to: the longest term it contains as words ('' if none)."""
    col = column.lower()
    edge = {True: r"(?<!\w)", False: ""}  # word boundaries only around word characters: '(mean acc)'
    hits = [t for t in GLOSSARY
            if re.search(edge[t[0].isalnum()] + re.escape(t.lower()) + edge[t[-1].isalnum()].replace("<", ""), col)]
    term = max(hits, key=len, default="")
    return f"{term}: {GLOSSARY[term]}" if term else ""


def glossary_html(tracks: Iterable[str]) -> str:
    """A folded key of every column and track name the page uses."""
    items = [f"<dt>{_esc(term)}</dt><dd>{_esc(text)}</dd>" for term, text in GLOSSARY.items()]
    for track in tracks:
        base, _, variant = track.partition(":")
        text = TRACK_KEY.get(base, "")
        if variant:
            text += f"; recipe {variant}: rows measured under that recipe (several recipes are reported apart, never averaged)"
        items.append(f"<dt>{_esc(track)}</dt><dd>{_esc(track_title(track))}: {_esc(text)}</dd>")
    return ('<section class="block" id="key"><details><summary>Key: every column and track name</summary>'
            f'<dl class="key">{"".join(items)}</dl></details></section>\n')


_STATE_TEXT = {"complete": "{done}/{n}", "partial": "{done} of {n}", "errored": "{done} of {n} · error", "not run": "not run"}


def _cov_cell(r: pd.Series | None, ipc: str) -> str:
    if r is None:
        return f'<td data-ipc="{_esc(ipc)}" class="cov none" title="not planned">·</td>'
    n, done = int(r["seeds_planned"]), int(r["seeds_done"])
    tip = f"{done} of {n} planned seeds stored"
    if r["error"]:
        tip += f"; {int(r['seeds_errored'])} errored: {r['error']}"
    text = _STATE_TEXT[r["status"]].format(done=done, n=n)
    return f'<td data-ipc="{_esc(ipc)}" class="cov {r["status"].replace(" ", "-")}" title="{_esc(tip)}">{_esc(text)}</td>'


def coverage_html(cov: pd.DataFrame | None) -> str:
    """The grid: a row per (track, dataset, arch, method), a column per IPC, each cell its state."""
    if cov is None or cov.empty:
        return ""
    ipcs = sorted({int(i) for i in cov["ipc"].dropna()})
    keys = [k for k in ("track", "dataset", "arch") if cov[k].nunique() > 1 or k == "track"] + ["method"]
    summary = incomplete_summary(cov) or f"complete: every one of the {len(cov)} planned cells has all its seeds"
    head = "".join(f'<th class="t">{k}</th>' for k in keys) + "".join(f'<th data-ipc="{i}">IPC {i}</th>' for i in ipcs)
    rows = []
    for key, part in cov.groupby(["track", "dataset", "arch", "method"], sort=True):
        facets = dict(zip(("track", "dataset", "arch", "method"), key))
        by_ipc = {str(int(r["ipc"])): r for _, r in part.iterrows()}
        tags = "".join(f' data-{k}="{_esc(str(v))}"' for k, v in facets.items())
        cells = "".join(f'<td class="t">{_esc(str(facets[k]))}</td>' for k in keys)
        rows.append(f"<tr{tags}>{cells}{''.join(_cov_cell(by_ipc.get(str(i)), str(i)) for i in ipcs)}</tr>")
    scope = " · ".join(f"{k} {cov[k].iloc[0]}" for k in ("dataset", "arch") if k not in keys)
    legend = ('<span class="cov complete">n/n</span> every planned seed stored · <span class="cov partial">k of n</span> '
              'some · <span class="cov errored">error</span> a trial failed (hover for its first line) · '
              '<span class="cov not-run">not run</span> nothing stored yet')
    return (f'<section class="block filtered" id="coverage"><h2>Coverage: what the specs plan, what the store holds '
            f'<span class="scope">{_esc(scope)}</span></h2><p class="summary">{_esc(summary)}</p>'
            f'<div class="row"><div class="tablewrap"><table class="coverage"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></div><p class="note">{legend}</p></section>\n')
