"""From trial rows to per-seed score inputs, per-cell scores and the accuracy table.

The joins (DESIGN §4): a syn row meets the rdm row of its comparison cell (same `cell` hash, or
the fallback columns), Acc(full, hard) comes from the full-data row of (dataset, arch, seed),
and a method's label setting L is the non-hard label among its syn rows. Every accuracy a score
needs carries a state (ok / diverged / missing) so a score that cannot be computed says why,
instead of turning into a zero. All of it is pandas groupby/merge and numpy: no per-row Python.

LRS uses one augmentation setting per cell, its *primary* one: aug on when the cell has any
aug-on syn rows (the protocol as configured), else off. ARS uses both and says which is missing.
Several syn rows for one (cell, seed, labels, aug) (different protocols or teachers) are averaged,
with a warning in the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ddray.report import metrics
from ddray.report.variants import split_track

CELL = ["track", "method", "dataset", "ipc", "arch"]
GROUP = ["track", "dataset", "ipc", "arch"]
SEEDED = CELL + ["seed"]
OK, DIVERGED, MISSING = 0, 1, 2


@dataclass(frozen=True)
class Settings:
    """Knobs of one report: score weights, compat mode, bootstrap size and seed."""

    lam: float = 0.5
    gamma: float = 0.5
    compat: str | None = None
    n_boot: int = 1000
    seed: int = 0
    ci: float = 0.95

    @property
    def ddof(self) -> int:
        """Sample std across seeds; the package's population std (np.std) in compat mode."""
        return 0 if self.compat else 1

    @property
    def score_scale(self) -> float:
        """Scores are shown ×100, except the package's raw numbers in compat mode."""
        return 1.0 if self.compat else 100.0


def _state(value: np.ndarray, diverged: np.ndarray, present: np.ndarray) -> np.ndarray:
    return np.where(~np.isnan(value), OK, np.where(present & diverged, DIVERGED, MISSING))


def _syn_table(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Syn accuracies per (cell, seed, labels, aug), each with its matched rdm accuracy."""
    ev = df[df["stage"] == "eval"]
    rdm = ev[ev["arm"] == "rdm"].groupby("jk", sort=False).agg(
        rdm_acc=("acc", "mean"), rdm_div=("diverged", "any"), rdm_rows=("acc", "size")
    )
    syn = ev[ev["arm"] == "syn"].join(rdm, on="jk")
    syn["rdm_rows"] = syn["rdm_rows"].fillna(0)
    syn["rdm_div"] = syn["rdm_div"].astype(object).where(syn["rdm_div"].notna(), False).astype(bool)
    agg = syn.groupby(SEEDED + ["labels", "aug"], sort=True, dropna=False).agg(
        acc=("acc", "mean"), div=("diverged", "any"), rows=("acc", "size"),
        rdm_acc=("rdm_acc", "mean"), rdm_div=("rdm_div", "any"), rdm_rows=("rdm_rows", "sum"),
        synth_s=("synth_s", "median"),
    ).reset_index()
    warnings = []
    dup = int((agg["rows"] > 1).sum())
    if dup:
        warnings.append(
            f"{dup} (method, seed, labels, aug) combinations have several syn rows "
            "(different protocols or teachers?); their accuracies are averaged"
        )
    return agg, warnings


def _label_settings(agg: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """L per cell id: the most frequent non-hard label among its syn rows, else hard."""
    nonhard = agg[agg["labels"] != "hard"]
    counts = nonhard.groupby(["cid", "labels"]).size().rename("n").reset_index()
    counts = counts.sort_values(["cid", "n", "labels"], ascending=[True, False, True])
    warnings = []
    multi = counts.groupby("cid")["labels"].nunique()
    if (multi > 1).any():
        warnings.append(f"{int((multi > 1).sum())} cells have syn rows with several non-hard labels; L is the most frequent")
    return counts.drop_duplicates("cid").set_index("cid")["labels"], warnings


def _lookup(agg: pd.DataFrame, sid: np.ndarray, labels: np.ndarray, aug: np.ndarray, syn: bool) -> tuple[np.ndarray, np.ndarray]:
    """(value, state) of the syn (or matched rdm) accuracy at (sid, labels, aug), missing if absent."""
    idx = pd.MultiIndex.from_arrays([sid, labels, aug])
    cols = ["acc", "div", "rows"] if syn else ["rdm_acc", "rdm_div", "rdm_rows"]
    got = agg.set_index(["sid", "labels", "aug"])[cols].reindex(idx)
    value = got[cols[0]].to_numpy(dtype=float)
    div = got[cols[1]].fillna(False).to_numpy(dtype=bool)
    present = got[cols[2]].fillna(0).to_numpy(dtype=float) > 0
    return value, _state(value, div, present)


def _full_lookup(df: pd.DataFrame, base: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Acc(full, hard) per (dataset, arch, seed): same track first, else any track (shared).

    A seed with no full-data row at all (a spec's `full.seeds` may train fewer seeds than the
    evaluations, full data is what costs) uses the mean over the seeds that have one, and the
    report says so. A seed whose own full-data arm diverged keeps that reason: it is never
    papered over with another seed's accuracy.
    """
    full = df[df["stage"] == "full"]
    keys = ["variant", "dataset", "arch", "seed"]   # the tuned track borrows the full arm of its recipe
    same = full.groupby(["track"] + keys).agg(acc=("acc", "mean"), div=("diverged", "any"))
    anyt = full.groupby(keys).agg(acc=("acc", "mean"), div=("diverged", "any"))
    a = same.reindex(pd.MultiIndex.from_frame(base[["track"] + keys]))
    b = anyt.reindex(pd.MultiIndex.from_frame(base[keys]))
    value = np.where(a["acc"].notna(), a["acc"], b["acc"]).astype(float)
    div = a["div"].fillna(False).to_numpy(bool) | b["div"].fillna(False).to_numpy(bool)
    present = a["div"].notna().to_numpy() | b["div"].notna().to_numpy()
    pooled = full.groupby(keys[:3]).agg(acc=("acc", "mean"), seeds=("seed", lambda s: sorted(set(s))),
                                         pretrained=("protocol", lambda p: (p == "pretrained").all()))
    c = pooled.reindex(pd.MultiIndex.from_frame(base[keys[:3]]))
    borrow = ~present & c["acc"].notna().to_numpy()
    value = np.where(borrow, c["acc"].to_numpy(float), value)
    warnings = []
    lent = set(c.index[borrow])
    for idx, row in pooled.loc[pooled.index.isin(c.index)].iterrows():  # one per (variant, dataset, arch)
        if row["pretrained"]:  # where the number came from, whether or not it was lent to other seeds
            source = "the pretrained checkpoint evaluated on the test split (full.from_teacher)"
        elif idx in lent:
            source = "seeds without their own full-data arm use the mean of seed(s) " + ", ".join(str(s) for s in row["seeds"])
        else:
            continue
        warnings.append(f"Acc(full, hard) for {idx[1]}/{idx[2]}: {source}")
    return value, _state(value, div, present | borrow), warnings


def _reason(states: list[np.ndarray], descs: list[pd.Series], where: list[pd.Series | str]) -> np.ndarray:
    """The first unusable input, as 'needs X' or 'X diverged' (+ where); None when all are usable."""
    conds, choices = [], []
    for st, desc, at in zip(states, descs, where):
        conds += [st == MISSING, st == DIVERGED]
        choices += [("needs " + desc + at).to_numpy(object), (desc + " diverged" + at).to_numpy(object)]
    return np.select(conds, choices, default=None)


def per_seed(df: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, list[str]]:
    """One row per (track, method, dataset, ipc, arch, seed) with every score input and score."""
    agg, warnings = _syn_table(df)
    if agg.empty:
        return pd.DataFrame(columns=SEEDED), warnings
    agg["sid"] = agg.groupby(SEEDED, sort=True, dropna=False).ngroup()
    agg["cid"] = agg.groupby(CELL, sort=True, dropna=False).ngroup()
    labels, w = _label_settings(agg)
    warnings += w
    base = agg.drop_duplicates("sid")[["sid", "cid"] + SEEDED].reset_index(drop=True)
    base["label_setting"] = base["cid"].map(labels).fillna("hard")
    base["primary_aug"] = base["cid"].map(agg.groupby("cid")["aug"].any()).astype(bool)
    base["synth_s"] = base["sid"].map(agg.groupby("sid")["synth_s"].median())
    sid, lab, paug = base["sid"].to_numpy(), base["label_setting"].to_numpy(object), base["primary_aug"].to_numpy(bool)
    hard = np.full(len(base), "hard", dtype=object)
    on, off = np.ones(len(base), bool), np.zeros(len(base), bool)
    base["variant"] = split_track(base["track"])[1]
    base["acc_full"], st_full, w = _full_lookup(df, base)
    warnings += w
    base["acc_syn_hard"], st_sh = _lookup(agg, sid, hard, paug, syn=True)
    base["acc_syn"], st_s = _lookup(agg, sid, lab, paug, syn=True)
    base["acc_rdm"], st_r = _lookup(agg, sid, lab, paug, syn=False)
    base["acc_syn_on"], st_son = _lookup(agg, sid, lab, on, syn=True)
    base["acc_rdm_on"], st_ron = _lookup(agg, sid, lab, on, syn=False)
    base["acc_syn_off"], st_soff = _lookup(agg, sid, lab, off, syn=True)
    base["acc_rdm_off"], st_roff = _lookup(agg, sid, lab, off, syn=False)
    base["hlr"] = metrics.hlr(base["acc_full"].to_numpy(), base["acc_syn_hard"].to_numpy())
    base["ior"] = metrics.ior(base["acc_syn"].to_numpy(), base["acc_rdm"].to_numpy())
    base["lrs"] = metrics.lrs(base["hlr"].to_numpy(), base["ior"].to_numpy(), settings.lam, settings.compat)
    base["gap_on"] = base["acc_syn_on"] - base["acc_rdm_on"]
    base["gap_off"] = base["acc_syn_off"] - base["acc_rdm_off"]
    base["ars"] = metrics.ars_from_gaps(base["gap_on"].to_numpy(), base["gap_off"].to_numpy(), settings.gamma, settings.compat)
    arch, ls = base["arch"].astype(str), base["label_setting"].astype(str)
    base["lrs_reason"] = _reason(
        [st_full, st_sh, st_s, st_r],
        [pd.Series("full/hard", index=base.index), pd.Series("syn/hard", index=base.index), "syn/" + ls, "rdm/" + ls],
        [" for " + arch, "", "", ""],
    )
    base["ars_reason"] = _reason(
        [st_son, st_ron, st_soff, st_roff],
        ["syn/" + ls + " aug on", "rdm/" + ls + " aug on", "syn/" + ls + " aug off", "rdm/" + ls + " aug off"],
        ["", "", "", ""],
    )
    return base.drop(columns=["sid", "variant"]), warnings


def _cell_reason(ps: pd.DataFrame, score: str, g) -> pd.Series:
    """'' when every seed scored; 'k/n seeds (seed s: why)' when some did; 'n/a (why)' when none."""
    with_reason = ps[ps[f"{score}_reason"].notna()]
    first = with_reason.groupby("cid")[[f"{score}_reason", "seed"]].first()
    n, k = g.size(), g[score].count()
    why = first[f"{score}_reason"].reindex(n.index).astype("str")
    seed = first["seed"].reindex(n.index).astype("Int64").astype("str")
    partial = k.astype("str") + "/" + n.astype("str") + " seeds (seed " + seed + ": " + why + ")"
    out = np.where(k == 0, "n/a (" + why.fillna("no rows") + ")", np.where(k < n, partial, ""))
    return pd.Series(out, index=n.index, dtype=object)


def cell_scores(ps: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per cell: mean ± std of per-seed scores, the score of the mean accuracies, reasons."""
    if ps.empty:
        return pd.DataFrame(columns=CELL)
    ps = ps.copy()
    lrs_ok, ars_ok = ps["lrs"].notna(), ps["ars"].notna()
    ps["hlr_v"], ps["ior_v"] = ps["hlr"].where(lrs_ok), ps["ior"].where(lrs_ok)
    ps["gap_on_v"], ps["gap_off_v"] = ps["gap_on"].where(ars_ok), ps["gap_off"].where(ars_ok)
    g = ps.groupby("cid", sort=True)
    out = g[CELL + ["label_setting", "primary_aug"]].first()
    out["n_seeds"] = g.size()
    means = g[["acc_full", "acc_syn_hard", "acc_syn", "acc_rdm", "hlr_v", "ior_v", "gap_on_v", "gap_off_v", "lrs", "ars"]].mean()
    stds = g[["acc_syn", "lrs", "ars"]].std(ddof=settings.ddof)
    for col in ["acc_full", "acc_syn_hard", "acc_syn", "acc_rdm"]:
        out[col] = means[col]
    out["acc_syn_std"] = stds["acc_syn"]
    out["hlr"], out["ior"] = means["hlr_v"], means["ior_v"]
    for score in ("lrs", "ars"):
        out[f"{score}_n"] = g[score].count()
        out[f"{score}_mean"] = means[score]
        out[f"{score}_std"] = stds[score]
    out["lrs_of_mean"] = metrics.lrs(out["hlr"].to_numpy(), out["ior"].to_numpy(), settings.lam, settings.compat)
    out["ars_of_mean"] = metrics.ars_from_gaps(
        means["gap_on_v"].to_numpy(), means["gap_off_v"].to_numpy(), settings.gamma, settings.compat
    )
    out["lrs_reason"] = _cell_reason(ps, "lrs", g)
    out["ars_reason"] = _cell_reason(ps, "ars", g)
    out["synth_s"] = g["synth_s"].median()
    return out.reset_index(drop=True)


def accuracy_table(df: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Unified-protocol accuracy per method (rdm and full as their own rows) × dataset × ipc × arch.

    Also keyed by protocol and teacher: two rdm cells with different teachers are two numbers.
    """
    rows = df[df["stage"].isin(["eval", "full"])].copy()
    if rows.empty:
        return pd.DataFrame(columns=["track", "dataset", "ipc", "arch", "method", "arm", "labels", "aug", "protocol", "teacher"])
    rows["method"] = rows["method"].astype(object).where(rows["arm"] == "syn", rows["arm"])
    keys = ["track", "dataset", "ipc", "arch", "method", "arm", "labels", "aug", "protocol", "teacher"]
    seeds = rows.groupby(keys + ["seed"], dropna=False).agg(acc=("acc", "mean"), div=("diverged", "all")).reset_index()
    seeds["div"] = seeds["div"] & seeds["acc"].isna()
    g = seeds.groupby(keys, dropna=False)
    out = g.agg(acc_mean=("acc", "mean"), n_seeds=("acc", "count"), n_diverged=("div", "sum"), n_rows=("acc", "size"))
    out["acc_std"] = g["acc"].std(ddof=settings.ddof)
    out = out.reset_index()
    out["arm_order"] = out["arm"].map({"full": 0, "rdm": 1, "syn": 2})
    out = out.sort_values(["track", "dataset", "arch", "ipc", "labels", "aug", "arm_order", "method"], na_position="first")
    return out.drop(columns="arm_order").reset_index(drop=True)[keys + ["acc_mean", "acc_std", "n_seeds", "n_diverged", "n_rows"]]


def synth_table(df: pd.DataFrame) -> pd.DataFrame:
    """Time-to-synthesize per (method, dataset, ipc): synth rows first, syn eval rows' synth_s else."""
    keys = ["method", "dataset", "ipc"]
    sy = df[(df["stage"] == "synth") & df["synth_s"].notna()]
    ev = df[(df["stage"] == "eval") & (df["arm"] == "syn") & df["synth_s"].notna()]
    a = sy.groupby(keys).agg(synth_s=("synth_s", "median"), synth_device=("synth_device", "first"), n=("synth_s", "size"))
    b = ev.groupby(keys).agg(synth_s=("synth_s", "median"), synth_device=("synth_device", "first"), n=("synth_s", "size"))
    out = pd.concat([a, b[~b.index.isin(a.index)]]).sort_index()
    return out.reset_index()


def tuning_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Fixed vs tuned side by side per (method, dataset, ipc, arch), with the gain from tuning."""
    base, variant = split_track(scores["track"])
    if scores.empty or base.nunique() < 2:
        return pd.DataFrame(columns=["method", "dataset", "ipc", "arch"])
    cols = ["acc_syn", "lrs_mean", "ars_mean"]
    scores = scores.assign(variant=variant, track=base)
    wide = scores.set_index(CELL + ["variant"])[cols].unstack("track")
    out = pd.DataFrame(index=wide.index)
    for col in cols:
        out[f"{col}_fixed"] = wide[(col, "fixed")] if (col, "fixed") in wide else np.nan
        out[f"{col}_tuned"] = wide[(col, "tuned")] if (col, "tuned") in wide else np.nan
        out[f"{col}_gain"] = out[f"{col}_tuned"] - out[f"{col}_fixed"]
    return out.reset_index()
