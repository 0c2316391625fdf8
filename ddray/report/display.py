"""Human-readable tables (strings) from a Report: what the terminal, Markdown and HTML show.

Why one place: the three text formats must agree on units (accuracy in %, scores ×100, or the
package's raw numbers in compat mode), on how a missing or diverged value reads ("n/a (why)",
"diverged"; never 0) and on row order. CSV and JSON skip this and carry the raw numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ddray.report.build import Report
from ddray.report.intervals import MIN_SEEDS_T
from ddray.report.tracks import track_title

DASH = "—"
LABEL_ORDER = {"hard": 0, "soft": 1, "hybrid": 2}


@dataclass(frozen=True)
class DisplayTable:
    """A titled table of strings, with an optional note printed under it.

    `track` is the track it shows (None: all); `detail` names the columns the page folds behind
    a toggle (intervals a reader opens on demand, so the table fits a laptop window); `best`
    says per score column whether higher or lower is better (the page sorts best-first).
    """

    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    track: str | None = None
    detail: tuple[str, ...] = ()
    best: dict[str, str] = field(default_factory=dict)


def _num(x: pd.Series, scale: float, digits: int) -> pd.Series:
    v = pd.to_numeric(x, errors="coerce").astype(float) * scale
    return pd.Series(np.where(np.isnan(v), "", np.char.mod(f"%.{digits}f", np.nan_to_num(v))), index=x.index, dtype=object)


def mean_std(mean: pd.Series, std: pd.Series, scale: float, digits: int = 2) -> pd.Series:
    """'m ± s' ('m' when std is NaN, e.g. one seed; '' when mean is NaN)."""
    m, s = _num(mean, scale, digits), _num(std, scale, digits)
    return m.where(s == "", m + " ± " + s).where(m != "", "")


def interval(lo: pd.Series, hi: pd.Series, scale: float, digits: int = 2) -> pd.Series:
    """'[lo, hi]' or ''."""
    a, b = _num(lo, scale, digits), _num(hi, scale, digits)
    return ("[" + a + ", " + b + "]").where(a != "", "")


def int_range(lo: pd.Series, hi: pd.Series) -> pd.Series:
    """'a' or 'a–b' for integer ranges (ranks); '' when missing."""
    a, b = _num(lo, 1.0, 0), _num(hi, 1.0, 0)
    return a.where(a == b, a + "–" + b).where(a != "", "")


def _ipc(x: pd.Series) -> pd.Series:
    v = pd.to_numeric(x, errors="coerce").astype(float)
    return pd.Series(np.where(v.isna(), DASH, v.fillna(0).astype(int).astype(str)), index=x.index, dtype=object)


def _score_digits(report: Report) -> int:
    return 4 if report.settings.compat else 2


def t_interval_text(lo: pd.Series, hi: pd.Series, mean: pd.Series, n: pd.Series, scale: float, digits: int = 2) -> pd.Series:
    """'[lo, hi]'; 'n/a (1 seed)' where a mean exists but too few seeds do for an interval; '' without a mean."""
    short = "n/a (" + n.astype(int).astype(str) + np.where(n == 1, " seed)", " seeds)")
    text = interval(lo, hi, scale, digits)
    return text.where(text != "", short.where(mean.notna() & (n < MIN_SEEDS_T), ""))


def seeds_text(n: pd.Series, planned: pd.Series) -> pd.Series:
    """'3', or '2 of 3' where fewer seeds scored than the plan asks for."""
    have = n.astype(int).astype(str)
    short = planned.notna() & (planned > n)
    return have.where(~short, have + " of " + planned.fillna(0).astype(int).astype(str))


def scores_table(report: Report, track: str) -> DisplayTable:
    """Robust scores of one track: mean ± std over seeds, its t-interval and seed bootstrap, score of mean accuracies."""
    s = report.scores.assign(planned=report.planned_seeds())
    s = s[s["track"] == track]
    r = report.rankings[report.rankings["track"] == track][["method", "dataset", "ipc", "arch", "rank_lrs"]]
    s = s.merge(r, on=["method", "dataset", "ipc", "arch"], how="left").sort_values(["dataset", "ipc", "arch", "rank_lrs", "method"])
    sc, d, ci = report.settings.score_scale, _score_digits(report), f"{report.settings.ci:.0%}"
    out = pd.DataFrame({"dataset": s["dataset"], "ipc": _ipc(s["ipc"]), "arch": s["arch"], "method": s["method"],
                        "L": s["label_setting"], "seeds": seeds_text(s["n_seeds"], s["planned"])})
    for key, name in (("lrs", "LRS"), ("ars", "ARS")):
        why = s[f"{key}_reason"].fillna("")
        out[name] = mean_std(s[f"{key}_mean"], s[f"{key}_std"], sc, d).where(s[f"{key}_mean"].notna(), why)
        out[f"{name} {ci} t"] = t_interval_text(s[f"{key}_t_lo"], s[f"{key}_t_hi"], s[f"{key}_mean"], s[f"{key}_n"], sc, d)
        out[f"{name} seed bootstrap"] = interval(s[f"{key}_lo"], s[f"{key}_hi"], sc, d)
        out[f"{name}(mean acc)"] = _num(s[f"{key}_of_mean"], sc, d)
    out["HLR %"], out["IOR %"] = _num(s["hlr"], 100, 2), _num(s["ior"], 100, 2)
    partial = [s[f"{k}_reason"].fillna("").where(s[f"{k}_mean"].notna(), "") for k in ("lrs", "ars")]
    out["note"] = ("LRS " + partial[0]).where(partial[0] != "", "") + np.where(
        (partial[0] != "") & (partial[1] != ""), "; ", "") + ("ARS " + partial[1]).where(partial[1] != "", "")
    st = report.settings
    unit = "raw ddranking-0.2 numbers, percent inputs" if st.compat else "×100"
    title = f"Robust scores — {track_title(track)} (λ = {st.lam:g}, γ = {st.gamma:g}; scores: {unit})"
    note = (f"LRS/ARS: mean ± std of per-seed scores over the n seeds that scored; {ci} t: Student t-interval of "
            f"that mean, mean ± t·std/√n with n − 1 degrees of freedom (n/a below {MIN_SEEDS_T} seeds); seed bootstrap: "
            f"{(1 - st.ci) / 2:.1%}–{(1 + st.ci) / 2:.1%} percentiles of the mean over {st.n_boot} resamples of the seeds "
            f"(seed {st.seed}), only C(2n−1, n) of them distinct (10 for n = 3): the spread of these seeds, too narrow "
            "for a confidence interval at few seeds; (mean acc): score of the mean accuracies; "
            "'2 of 3' seeds: fewer seeds scored than planned.")
    detail = tuple(c for c in out.columns if c.endswith((" t", " seed bootstrap", "(mean acc)")))
    best = {"LRS": "high", "ARS": "high", "LRS(mean acc)": "high", "ARS(mean acc)": "high", "HLR %": "low", "IOR %": "high"}
    return DisplayTable(f"scores_{track}", title, out.reset_index(drop=True), note, track, detail, best)


def accuracy_table(report: Report, track: str) -> DisplayTable:
    """Accuracy (%) per method × dataset × IPC × arch, one column per (labels, aug); rdm and full as rows."""
    a = report.accuracy[report.accuracy["track"] == track].copy()
    text = mean_std(a["acc_mean"], a["acc_std"], 100.0)
    div = a["n_diverged"].astype(int)
    text = text.where(a["n_seeds"] > 0, np.where(div > 0, "diverged", "n/a"))
    text = text.where((div == 0) | (a["n_seeds"] == 0), text + " (" + div.astype(str) + " diverged)")
    a["value"] = text
    a["setting"] = a["labels"].astype(str) + np.where(a["aug"], " / aug on", " / aug off")
    a["ipc_s"] = _ipc(a["ipc"])
    # Several protocols/teachers for one setting: name them in the column instead of merging.
    dup = a.groupby(["dataset", "arch", "ipc_s", "method", "setting"])["setting"].transform("size") > 1
    which = " [" + a["protocol"].astype(object).fillna("-").astype(str) + ", " + a["teacher"].astype(object).fillna("no teacher").astype(str) + "]"
    a["setting"] = a["setting"].where(~dup, a["setting"] + which)
    order = {"full": 0, "rdm": 1}
    a["o"] = a["method"].map(order).fillna(2)
    a = a.sort_values(["dataset", "arch", "ipc", "o", "method"], na_position="first")
    wide = a.pivot_table(index=["dataset", "arch", "ipc_s", "o", "method"], columns="setting", values="value",
                         aggfunc="first", sort=False).reset_index()
    wide = wide.drop(columns="o").rename(columns={"ipc_s": "ipc"}).fillna("")
    wide.columns.name = None
    settings = sorted(wide.columns[4:], key=lambda c: (LABEL_ORDER.get(c.split(" / ")[0], 9), c.split(" / ")[0], "off" in c))
    wide = wide[list(wide.columns[:4]) + settings]
    best = {c: "high" for c in settings}
    return DisplayTable(f"accuracy_{track}", f"Accuracy % (mean ± std over seeds) — {track_title(track)}", wide,
                        "rdm: class-balanced random real subset of the same IPC; full: whole train split (no IPC).",
                        track, best=best)


def rankings_table(report: Report, track: str) -> DisplayTable:
    """Ranks with their bootstrap interval and their range over λ / γ."""
    r = report.rankings[report.rankings["track"] == track]
    out = pd.DataFrame({"dataset": r["dataset"], "ipc": _ipc(r["ipc"]), "arch": r["arch"], "method": r["method"]})
    for key, name, weight in (("lrs", "LRS", "lambda"), ("ars", "ARS", "gamma"), ("acc", "Acc", None)):
        out[f"{name} rank"] = _num(r[f"rank_{key}"], 1.0, 0)
        out[f"{name} seed bootstrap"] = int_range(r[f"rank_{key}_lo"], r[f"rank_{key}_hi"])
        if weight:
            out[f"{name} over {'λ' if weight == 'lambda' else 'γ'}"] = int_range(r[f"rank_{key}_{weight}_min"], r[f"rank_{key}_{weight}_max"])
    st = report.settings
    return DisplayTable(f"rankings_{track}", f"Rankings — {track_title(track)}", out.reset_index(drop=True),
                        f"seed bootstrap: {(1 - st.ci) / 2:.1%}–{(1 + st.ci) / 2:.1%} percentiles of the rank over "
                        "resamples of the seeds (coarse at few seeds: 10 distinct resamples for 3 seeds); over λ/γ: "
                        "min–max rank for weights in {0, .25, .5, .75, 1}.", track,
                        detail=tuple(c for c in out.columns if " seed bootstrap" in c),
                        best={c: "low" for c in out.columns if c.endswith(" rank")})


def kendall_table(report: Report, track: str) -> DisplayTable:
    """Kendall τ-b between accuracy and LRS rankings."""
    k = report.kendall[report.kendall["track"] == track]
    out = pd.DataFrame({"dataset": k["dataset"], "ipc": _ipc(k["ipc"]), "arch": k["arch"],
                        "methods": k["n_methods"].astype(str), "Kendall τ (Acc vs LRS)": _num(k["kendall_tau"], 1.0, 3)})
    return DisplayTable(f"kendall_{track}", f"Accuracy vs LRS ranking agreement — {track_title(track)}",
                        out.reset_index(drop=True), track=track)


def tuning_table(report: Report) -> DisplayTable:
    """Fixed vs tuned track side by side with the gain from tuning."""
    t = report.tuning
    sc, d = report.settings.score_scale, _score_digits(report)
    out = pd.DataFrame({"method": t["method"], "dataset": t["dataset"], "ipc": _ipc(t["ipc"]), "arch": t["arch"]})
    for col, name, scale, digits in (("acc_syn", "Acc %", 100.0, 2), ("lrs_mean", "LRS", sc, d), ("ars_mean", "ARS", sc, d)):
        out[f"{name} fixed"] = _num(t[f"{col}_fixed"], scale, digits)
        out[f"{name} tuned"] = _num(t[f"{col}_tuned"], scale, digits)
        out[f"{name} gain"] = _num(t[f"{col}_gain"], scale, digits)
    best = {c: "high" for c in out.columns if c.startswith(("Acc", "LRS", "ARS"))}
    return DisplayTable("tuning", "Gain from tuning (tuned − fixed)", out.reset_index(drop=True), best=best)


def synth_table(report: Report) -> DisplayTable:
    """Median time-to-synthesize per (method, dataset, ipc)."""
    s = report.synth
    out = pd.DataFrame({"method": s["method"], "dataset": s["dataset"], "ipc": _ipc(s["ipc"]),
                        "synth s (median)": _num(s["synth_s"], 1.0, 1), "device": s["synth_device"].fillna("")})
    return DisplayTable("synth", "Time to synthesize", out.reset_index(drop=True), best={"synth s (median)": "low"})


def display_tables(report: Report) -> list[DisplayTable]:
    """Every human-readable table in report order (tracks side by side: fixed first)."""
    tables: list[DisplayTable] = []
    scored = set(report.scores["track"]) if len(report.scores) else set()  # a store of full-data rows has no scores
    for builder in (scores_table, accuracy_table, rankings_table, kendall_table):
        tables += [builder(report, t) for t in report.tracks if builder is accuracy_table or t in scored]
    if len(report.tuning):
        tables.append(tuning_table(report))
    if len(report.synth):
        tables.append(synth_table(report))
    return [t for t in tables if len(t.frame)]


def numeric_columns(t: DisplayTable) -> list[bool]:
    """Per column: do most of its filled cells read as numbers ('70.00 ± 0.62', '[1, 2]', '1–3')?

    What HTML and LaTeX right-align; text columns (names, reasons) stay left.
    """
    out = []
    for col in t.frame.columns:
        cells = [str(v) for v in t.frame[col] if str(v) not in ("", DASH)]
        out.append(bool(cells) and 2 * sum(c[:1].isdigit() or c[:1] in "-[" for c in cells) >= len(cells))
    return out
