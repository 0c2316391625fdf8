"""LaTeX tables for a paper: robust scores (LRS, ARS with ranks) and accuracy, `booktabs` floats.

The robust-scores table is a model plus a fill (see `export.py`): the page's "LaTeX" button
fills the same model at its sliders' λ and γ and must print exactly what
`ddray report --format latex --lambda X --gamma Y` prints, so the weights appear in the
caption only through the `{lam}`/`{gam}` placeholders and every number through `fill_latex`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ddray.report.build import Report
from ddray.report.display import DisplayTable, accuracy_table, numeric_columns
from ddray.report.export import cell_values, fixed_fmt
from ddray.report.tracks import track_slug, track_title

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "±": r"$\pm$", "—": "---", "–": "--", "×": r"$\times$", "λ": r"$\lambda$", "γ": r"$\gamma$", "τ": r"$\tau$"}
_SPECIAL_RE = re.compile("|".join(map(re.escape, _SPECIAL)))
GROUP_COLUMNS = ("dataset", "arch", "ipc")
"""Leading columns that form a block of rows, with a rule between blocks."""
HEAD = "% ddray benchmark tables; needs \\usepackage{booktabs}\n"
ROBUST_HEADER = ["dataset", "arch", "IPC", "method", "L", "seeds", "LRS", "rank", "ARS", "rank"]


def latex_escape(text: object) -> str:
    """Text safe inside a LaTeX table cell (specials escaped in one pass; ±, dashes, Greek as math)."""
    return _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))


def _float(spec: str, caption: str, label: str, header: list[str]) -> list[str]:
    return [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]


END = [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def latex_table(t: DisplayTable, label: str) -> str:
    """One display table as a `booktabs` float: every row carries its dataset, arch and IPC (a
    reader can cut any row out), `\\midrule` between (dataset, arch, IPC) blocks, numbers
    right-aligned, title and note as the caption."""
    cols = list(t.frame.columns)
    keys = [cols.index(c) for c in GROUP_COLUMNS if c in cols]
    spec = "".join("r" if n and i not in keys else "l" for i, n in enumerate(numeric_columns(t)))
    caption = latex_escape(t.title) + ("." + " " + latex_escape(t.note) if t.note else "")
    lines = _float(spec, caption, label, [latex_escape("IPC" if c == "ipc" else c) for c in cols])
    previous: tuple | None = None
    for row in t.frame.itertuples(index=False):
        block = tuple(row[i] for i in keys)
        if previous is not None and block != previous:
            lines.append(r"\midrule")
        previous = block
        lines.append(" & ".join(latex_escape(v) for v in row) + r" \\")
    return "\n".join(lines + END) + "\n"


def robust_model(report: Report) -> dict[str, Any]:
    """The robust-scores tables without their numbers: per track, the caption (λ, γ as `{lam}`,
    `{gam}`), its label, and blocks of rows per (dataset, IPC, arch), each row its escaped
    static cells and the scored cell (`Report.score_cells` index) that fills the rest."""
    st = report.settings
    unit = "raw ddranking-0.2 scores" if st.compat else r"scores $\times$100"
    model: dict[str, Any] = {"head": HEAD, "scale": st.score_scale, "digits": 4 if st.compat else 2, "tables": []}
    s = report.score_cells().assign(cell=lambda f: range(len(f)))
    for track in report.tracks:
        part = s[s["track"] == track]
        if part.empty:
            continue
        datasets = ", ".join(latex_escape(d) for d in sorted(part["dataset"].unique()))
        caption = (rf"Robust scores on {datasets}, {latex_escape(track_title(track))} ($\lambda$ = {{lam}}, $\gamma$ = {{gam}}; "
                   rf"{unit}): LRS and ARS as mean $\pm$ std over seeds; rank 1 = best per dataset, IPC and arch; "
                   r"best per column in bold; seeds `k/n': k of the n planned seeds scored.")
        blocks = []
        for _, block in part.groupby(["dataset", "ipc", "arch"], sort=True):
            blocks.append([{"cell": int(r.cell), "pre": [
                latex_escape(r.dataset), latex_escape(r.arch), str(int(r.ipc)), latex_escape(r.method),
                latex_escape(r.label_setting), _seeds(r.n_seeds, r.planned)]} for r in block.itertuples(index=False)])
        model["tables"].append({"begin": _float("lllllr" + "rrrr", caption, f"tab:ddray-robust-{track_slug(track)}",
                                                ROBUST_HEADER), "blocks": blocks})
    return model


def _seeds(n: float, planned: float) -> str:
    return f"{int(n)}/{int(planned)}" if not math.isnan(planned) and planned > n else str(int(n))


def _score_cell(mean: float, std: float, rank: float, scale: float, digits: int) -> str:
    text = fixed_fmt(mean, scale, digits)
    if not text:
        return "n/a"
    if not math.isnan(std):
        text += r" $\pm$ " + fixed_fmt(std, scale, digits)
    return rf"\textbf{{{text}}}" if rank == 1 else text


def fill_latex(model: dict[str, Any], values: list[dict[str, float]], lam: float, gam: float) -> str:
    """The robust-scores tables of `model` with the numbers of `values` at weights (λ, γ)."""
    out = []
    sc, d = model["scale"], model["digits"]
    for table in model["tables"]:
        lines = [ln.replace("{lam}", f"{lam:.2f}").replace("{gam}", f"{gam:.2f}") for ln in table["begin"]]
        for i, block in enumerate(table["blocks"]):
            if i:
                lines.append(r"\midrule")
            for row in block:
                v = values[row["cell"]]
                ranks = [("" if math.isnan(v[k]) else str(int(v[k]))) for k in ("rank_lrs", "rank_ars")]
                cells = [*row["pre"], _score_cell(v["lrs"], v["lrs_std"], v["rank_lrs"], sc, d), ranks[0],
                         _score_cell(v["ars"], v["ars_std"], v["rank_ars"], sc, d), ranks[1]]
                lines.append(" & ".join(cells) + r" \\")
        out.append("\n".join(lines + END) + "\n")
    return "\n".join(out)


def latex_robust(report: Report) -> str:
    """The robust-scores tables at the report's λ and γ (what the page's LaTeX button gives at those weights)."""
    return fill_latex(robust_model(report), cell_values(report), report.settings.lam, report.settings.gamma)


def latex_unified(report: Report) -> str:
    """Every table a paper needs, per track: robust scores (LRS, ARS, ranks), then accuracy % per
    method and setting (mean ± std over seeds). Needs `\\usepackage{booktabs}`."""
    accuracy = [accuracy_table(report, track) for track in report.tracks]
    body = "\n".join(latex_table(t, f"tab:ddray-accuracy-{track_slug(t.track or '')}") for t in accuracy if len(t.frame))
    robust = latex_robust(report)
    parts = [p for p in (robust, body) if p]
    return HEAD + ("\n".join(parts) or "% no rows to report\n")
