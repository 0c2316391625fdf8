"""What the HTML page's explorer computes from: per-seed score inputs, and the script itself.

Why per-seed inputs and not scores: a reader moves λ and γ in the page and the page recomputes
LRS, ARS and the ranks (`explore.js`, the same formulas as `metrics.py` and `aggregate.py`,
ranks as `bootstrap.descending_ranks`). LRS and ARS are non-linear in the accuracies, so the
mean ± std over seeds and the score of the mean accuracies need every seed's HLR, IOR and
syn − rdm gaps, not the cell means. Bootstrap intervals are not recomputed (their resamples come
from numpy's generator); the page shows them as built, at the report's λ and γ.
"""

from __future__ import annotations

import json
import math
from importlib.resources import files
from typing import Any

import pandas as pd

from ddray.report.aggregate import CELL
from ddray.report.build import Report
from ddray.report.colors import color_map
from ddray.report.export import leaderboard_model
from ddray.report.latex import robust_model

SEED_INPUTS = ("hlr", "ior", "gap_on", "gap_off", "acc_syn")
"""Per-seed values the page needs: LRS from (hlr, ior), ARS from (gap_on, gap_off), ranks by acc_syn."""


def _num(x: Any) -> float | None:
    """A JSON number, or null for NaN/None (JSON has no NaN)."""
    v = float(x) if x is not None and not pd.isna(x) else math.nan
    return None if math.isnan(v) else v


def _text(x: Any) -> str:
    return "" if x is None or (not isinstance(x, str) and pd.isna(x)) else str(x)


def explore_data(report: Report) -> dict[str, Any]:
    """The page's data: score settings, one entry per scored cell, and that cell's seeds.

    `cells[i]` holds the facets (track, method, dataset, ipc, arch, labels), the seed count (and
    the planned one, null when unknown) and the weight-independent n/a reasons; `seeds` holds
    `cell` (the index into `cells`), `seed` and `SEED_INPUTS`, in full precision so the page's
    numbers are Python's. `colors` is the report's method -> colour map; `leaderboard` and
    `latex` are the export models the page's download buttons fill (`export.py`).
    """
    st = report.settings
    settings = {"lambda": st.lam, "gamma": st.gamma, "compat": st.compat or "", "input_scale": 100.0 if st.compat else 1.0,
                "ddof": st.ddof, "score_scale": st.score_scale, "digits": 4 if st.compat else 2}
    colors = color_map(report.accuracy["method"]) if len(report.accuracy) else {}
    exports = {"leaderboard": leaderboard_model(report), "latex": robust_model(report)}
    if report.scores.empty:
        return {"settings": settings, "colors": colors, "cells": [], "seeds": [], **exports}
    sc = report.score_cells()
    cells = [
        {"track": r.track, "method": r.method, "dataset": r.dataset, "ipc": str(int(r.ipc)), "arch": r.arch,
         "labels": r.label_setting, "n_seeds": int(r.n_seeds), "planned": None if pd.isna(r.planned) else int(r.planned),
         "lrs_reason": _text(r.lrs_reason), "ars_reason": _text(r.ars_reason)}
        for r in sc.itertuples(index=False)
    ]
    index = {key: i for i, key in enumerate(sc[CELL].itertuples(index=False, name=None))}
    ps = report.per_seed
    values = ps[list(SEED_INPUTS)].astype(float).itertuples(index=False, name=None)
    seeds = [
        {"cell": index[key], "seed": int(seed), **{c: _num(v) for c, v in zip(SEED_INPUTS, vals)}}
        for key, seed, vals in zip(ps[CELL].itertuples(index=False, name=None), ps["seed"], values)
    ]
    return {"settings": settings, "colors": colors, "cells": cells, "seeds": seeds, **exports}


def data_script(data: dict[str, Any]) -> str:
    """`explore_data` as an inert JSON <script>; '<' is escaped so no value can close the tag."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    safe = text.replace("<", "\\u003c")
    return f'<script type="application/json" id="ddray-data">{safe}</script>\n'


SCRIPTS = ("export.js", "explore.js")
"""The page's scripts (package data), in load order: the export fills, then the explorer using them."""


def script() -> str:
    """The page's scripts as one text, to be inlined: the page needs no file beside it."""
    return "\n".join(files("ddray.report").joinpath(name).read_text(encoding="utf-8") for name in SCRIPTS)
