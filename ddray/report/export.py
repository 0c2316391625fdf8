"""Exports for elsewhere: DD-Ranking's leaderboard CSV and LaTeX tables for a paper.

Why a *model* and a *fill*: the page offers the same two downloads at whatever λ and γ its
sliders show, and they must be byte-for-byte what `ddray report --format leaderboard|latex
--lambda X --gamma Y` prints. So everything that does not depend on the weights (names, order,
captions, escaping, blocks) is built once here as JSON-ready data (`leaderboard_model`,
`latex.robust_model`) that the page embeds; only the weight-dependent numbers are filled in,
by `fill_csv` here and by the same few lines in `export.js` over the page's recomputed scores.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from ddray.report.build import Report
from ddray.report.variants import split_track

DDRANKING_COLUMNS = ("method", "method_reference", "verified", "date", "dataset", "ipc", "label_type", "hlr", "ior")
"""DD-Ranking's leaderboard columns, in its order."""
LEADERBOARD_COLUMNS = (*DDRANKING_COLUMNS, "lrs", "ars")
"""What ddray writes: DD-Ranking's columns, then LRS and ARS at the report's λ and γ."""
REFERENCES = {
    "random": "https://github.com/NUS-HPC-AI-Lab/DD-Ranking",
    "herding": "https://doi.org/10.1145/1553374.1553517",
    "kcenter": "https://arxiv.org/abs/1708.00489",
    "dm": "https://arxiv.org/abs/2110.04181",
    "sre2l": "https://arxiv.org/abs/2306.13092",
    "rded": "https://arxiv.org/abs/2312.03526",
}
"""Where each built-in method comes from (random: the baseline as DD-Ranking defines it);
other methods (yours) get none."""


def cell_values(report: Report) -> list[dict[str, float]]:
    """Per scored cell (`Report.score_cells` order): what the exports fill in, as the page computes it."""
    if report.scores.empty:
        return []
    c = report.score_cells()
    cols = {"lrs": "lrs_mean", "lrs_std": "lrs_std", "ars": "ars_mean", "ars_std": "ars_std",
            "rank_lrs": "rank_lrs", "rank_ars": "rank_ars", "hlr": "hlr", "ior": "ior"}
    return [{k: float(v) for k, v in zip(cols, vals)} for vals in c[list(cols.values())].astype(float).itertuples(index=False)]


def fixed_fmt(value: float, scale: float, digits: int) -> str:
    """`value × scale` with `digits` decimals; '' when missing (JavaScript's toFixed gives the same)."""
    return "" if math.isnan(value) else f"{value * scale:.{digits}f}"


def leaderboard_model(report: Report) -> dict[str, Any]:
    """DD-Ranking's leaderboard rows without their scores: one per (method, dataset, IPC, label type)
    of the fixed tracks, each naming the scored cell (`cell`) whose numbers fill it.

    Every fixed-protocol track is exported (a store holding a hard- and a soft-label study gives
    both, told apart by `label_type`), never the tuned one (a different protocol per method).
    `verified` is false (ddray cannot vouch for a run) and `date` is the day the newest trial
    finished. The leaderboard has no arch or recipe column, so when one (dataset, IPC) was
    evaluated with several student archs the method reads 'name (arch)', and when one label type
    was measured under several recipes, 'name [recipe]'.
    """
    st = report.settings
    model: dict[str, Any] = {"columns": list(LEADERBOARD_COLUMNS), "scale": st.score_scale,
                             "digits": 4 if st.compat else 2, "rows": []}
    if report.scores.empty:
        return model
    s = report.score_cells()
    base, variant = split_track(s["track"])
    s = s.assign(variant=variant, cell=range(len(s)))[base == "fixed"]
    s = s.sort_values(["dataset", "ipc", "label_setting", "method", "arch", "variant"])
    archs = s.groupby(["dataset", "ipc"])["arch"].transform("nunique") > 1
    recipes = s.groupby(["dataset", "ipc", "label_setting"])["variant"].transform("nunique") > 1
    date = report.newest_finished_at.date().isoformat() if report.newest_finished_at is not None else ""
    for (_, r), by_arch, by_recipe in zip(s.iterrows(), archs, recipes):
        name = r["method"] + (f" ({r['arch']})" if by_arch else "") + (f" [{r['variant']}]" if by_recipe else "")
        model["rows"].append({"cell": int(r["cell"]), "pre": [name, REFERENCES.get(r["method"], ""), "false", date,
                                                               r["dataset"], str(int(r["ipc"])), r["label_setting"]]})
    return model


def fill_csv(model: dict[str, Any], values: list[dict[str, float]]) -> str:
    """The leaderboard CSV: the model's rows with HLR and IOR (percentage points) and LRS, ARS filled in."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(model["columns"])
    for row in model["rows"]:
        v = values[row["cell"]]
        writer.writerow([*row["pre"], fixed_fmt(v["hlr"], 100.0, 2), fixed_fmt(v["ior"], 100.0, 2),
                         fixed_fmt(v["lrs"], model["scale"], model["digits"]),
                         fixed_fmt(v["ars"], model["scale"], model["digits"])])
    return out.getvalue()


def leaderboard_csv(report: Report) -> str:
    """DD-Ranking's leaderboard CSV of the report (see `leaderboard_model`), LRS and ARS at its λ and γ."""
    return fill_csv(leaderboard_model(report), cell_values(report))

