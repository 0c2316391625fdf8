"""Exports for elsewhere: DD-Ranking's leaderboard CSV and the unified table as LaTeX.

Why these two: a store's numbers end up on DD-Ranking's leaderboard (its CSV columns, HLR and
IOR in percentage points) and in papers (a `booktabs` table, mean ± std over seeds). Both are
built from the same `Report` as every other format, so they can never disagree with it.
"""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from ddray.report.build import Report
from ddray.report.display import DisplayTable, accuracy_table, numeric_columns
from ddray.report.variants import split_track

LEADERBOARD_COLUMNS = ("method", "method_reference", "verified", "date", "dataset", "ipc", "label_type", "hlr", "ior")
REFERENCES = {
    "kcenter": "https://arxiv.org/abs/1708.00489",
    "dm": "https://arxiv.org/abs/2110.04181",
    "sre2l": "https://arxiv.org/abs/2306.13092",
    "rded": "https://arxiv.org/abs/2312.03526",
}
"""Papers of the built-in synthesizers; other methods (yours, `random`, `herding`) get none."""


def _pp(x: float) -> str:
    """A fraction as percentage points with two decimals; '' when missing."""
    return "" if pd.isna(x) else f"{100.0 * float(x):.2f}"


def leaderboard_csv(report: Report) -> str:
    """DD-Ranking's leaderboard rows: one per (method, dataset, IPC, label type) of the fixed tracks.

    Every fixed-protocol track is exported (a store holding a hard- and a soft-label study gives
    both, told apart by `label_type`), never the tuned one (a different protocol per method).
    `verified` is false (ddray cannot vouch for a run) and `date` is the day the newest trial
    finished. The leaderboard has no arch or recipe column, so when one (dataset, IPC) was
    evaluated with several student archs the method reads 'name (arch)', and when one label type
    was measured under several recipes, 'name [recipe]'.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LEADERBOARD_COLUMNS)
    if report.scores.empty:
        return out.getvalue()
    base, variant = split_track(report.scores["track"])
    s = report.scores.assign(variant=variant)[base == "fixed"]
    s = s.sort_values(["dataset", "ipc", "label_setting", "method", "arch", "variant"])
    archs = s.groupby(["dataset", "ipc"])["arch"].transform("nunique") > 1
    recipes = s.groupby(["dataset", "ipc", "label_setting"])["variant"].transform("nunique") > 1
    date = report.newest_finished_at.date().isoformat() if report.newest_finished_at is not None else ""
    for (_, r), by_arch, by_recipe in zip(s.iterrows(), archs, recipes):
        name = r["method"] + (f" ({r['arch']})" if by_arch else "") + (f" [{r['variant']}]" if by_recipe else "")
        writer.writerow([name, REFERENCES.get(r["method"], ""), "false", date, r["dataset"], int(r["ipc"]),
                         r["label_setting"], _pp(r["hlr"]), _pp(r["ior"])])
    return out.getvalue()


_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "±": r"$\pm$", "—": "---", "–": "--", "×": r"$\times$", "λ": r"$\lambda$", "γ": r"$\gamma$", "τ": r"$\tau$"}
_SPECIAL_RE = re.compile("|".join(map(re.escape, _SPECIAL)))
GROUP_COLUMNS = ("dataset", "arch", "ipc")
"""Leading columns a paper prints once per block of rows, with a rule between blocks."""


def latex_escape(text: object) -> str:
    """Text safe inside a LaTeX table cell (specials escaped in one pass; ±, dashes, Greek as math)."""
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))


def latex_table(t: DisplayTable, label: str) -> str:
    """One display table as a `booktabs` table float: a block of rows per (dataset, arch, IPC),
    `\\midrule` between blocks, a key printed only where it changes (as `multirow` would show it,
    without the package), numbers right-aligned, title and note as the caption."""
    cols = list(t.frame.columns)
    keys = [cols.index(c) for c in GROUP_COLUMNS if c in cols]
    spec = "".join("r" if n and i not in keys else "l" for i, n in enumerate(numeric_columns(t)))
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{latex_escape(t.title)}{'. ' + latex_escape(t.note) if t.note else ''}}}",
             rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape("IPC" if c == "ipc" else c) for c in cols) + r" \\", r"\midrule"]
    previous: tuple | None = None
    for row in t.frame.itertuples(index=False):
        block = tuple(row[i] for i in keys)
        cells = [latex_escape(v) for v in row]
        if previous is not None:
            if block != previous:
                lines.append(r"\midrule")
            for j, i in enumerate(keys):
                if block[: j + 1] == previous[: j + 1]:
                    cells[i] = ""
        previous = block
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def latex_unified(report: Report) -> str:
    """The unified table (accuracy % per method and setting, mean ± std over seeds) per track,
    as LaTeX floats for a paper; needs `\\usepackage{booktabs}`."""
    head = "% ddray unified benchmark table; needs \\usepackage{booktabs}\n"
    tables = [accuracy_table(report, track) for track in report.tracks]
    body = "\n".join(latex_table(t, f"tab:ddray-{t.name.replace('_', '-')}") for t in tables if len(t.frame))
    return head + (body or "% no rows to report\n")
