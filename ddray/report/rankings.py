"""Method rankings per (track, dataset, ipc, arch) and how much they can be trusted.

A rank from three seeds can flip with one more; a rank under λ = 0.5 can flip under λ = 0.25.
So next to each rank (by LRS, ARS and accuracy) this module gives its interval over seed
bootstrap resamples (2.5–97.5 percentile) and its min–max over λ, γ ∈ {0, 0.25, 0.5, 0.75, 1},
and per group the Kendall τ-b between the accuracy ranking and the LRS ranking (how much the
robust score reorders methods). Everything works on the bootstrap's padded (group, member)
layout, so a thousand groups cost a few array operations, not a thousand loop steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddray.report import metrics
from ddray.report.aggregate import CELL, GROUP, Settings
from ddray.report.bootstrap import GroupedBootstrap, descending_ranks, grouped_bootstrap, nan_quantiles

WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
RANKED = {"lrs": ("lrs_mean", "lrs"), "ars": ("ars_mean", "ars"), "acc": ("acc_syn", "acc_syn")}
"""Rank key -> (cell column it ranks, per-seed column bootstrapped). acc = unified-protocol Acc(syn, L)."""


def seed_bootstrap(ps: pd.DataFrame, settings: Settings) -> GroupedBootstrap:
    """Bootstrap means of per-seed LRS, ARS and Acc(syn, L), seeds shared within each group."""
    return grouped_bootstrap(ps, GROUP, "method", ["lrs", "ars", "acc_syn"], settings.n_boot, settings.seed)


def _weight_sweep(ps: pd.DataFrame, boot: GroupedBootstrap, score: str, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Min and max rank of each slot over the weight grid (λ for LRS, γ for ARS); NaN if unscored."""
    ranks = []
    for w in WEIGHT_GRID:
        if score == "lrs":
            per_seed = metrics.lrs(ps["hlr"].to_numpy(), ps["ior"].to_numpy(), w, settings.compat)
        else:
            per_seed = metrics.ars_from_gaps(ps["gap_on"].to_numpy(), ps["gap_off"].to_numpy(), w, settings.compat)
        ranks.append(boot.unpad(descending_ranks(boot.pad(boot.slot_means(per_seed)))))
    stack = np.vstack(ranks)
    valid = ~np.isnan(stack)
    lo = np.where(valid, stack, np.inf).min(axis=0)
    hi = np.where(valid, stack, -np.inf).max(axis=0)
    return np.where(valid.any(axis=0), lo, np.nan), np.where(valid.any(axis=0), hi, np.nan)


def rankings(scores: pd.DataFrame, ps: pd.DataFrame, boot: GroupedBootstrap, settings: Settings) -> pd.DataFrame:
    """One row per cell: rank by LRS, ARS and accuracy; bootstrap rank intervals; λ/γ rank ranges."""
    out = boot.slots[CELL].merge(scores[CELL + [c for c, _ in RANKED.values()]], on=CELL, how="left")
    tail = (1.0 - settings.ci) / 2.0
    for key, (col, boot_col) in RANKED.items():
        out[f"rank_{key}"] = boot.unpad(descending_ranks(boot.pad(out[col].to_numpy(float))))
        r = boot.unpad(descending_ranks(boot.means[boot_col]))  # (cells, B)
        lo, hi = nan_quantiles(r, (tail, 1 - tail), axis=1)
        out[f"rank_{key}_lo"], out[f"rank_{key}_hi"] = np.floor(lo), np.ceil(hi)
    for score, weight in (("lrs", "lambda"), ("ars", "gamma")):
        out[f"rank_{score}_{weight}_min"], out[f"rank_{score}_{weight}_max"] = _weight_sweep(ps, boot, score, settings)
    out["n_methods"] = out.groupby(GROUP, dropna=False)["method"].transform("size").to_numpy()
    out = out.drop(columns=[c for c, _ in RANKED.values()])
    return out.sort_values(GROUP + ["rank_lrs", "method"], na_position="last").reset_index(drop=True)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall τ-b along the last axis over members where both are present; (τ, n pairs' members).

    τ-b = Σ sign(Δx)·sign(Δy) / sqrt(Σ sign(Δx)² · Σ sign(Δy)²) over pairs, which is scipy's
    `kendalltau` (variant 'b') written as one batched array expression.
    """
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = np.where(both, x, 0.0), np.where(both, y, 0.0)
    pair = both[..., :, None] & both[..., None, :]
    sx = np.sign(x[..., :, None] - x[..., None, :]) * pair
    sy = np.sign(y[..., :, None] - y[..., None, :]) * pair
    num = (sx * sy).sum(axis=(-2, -1))
    den = np.sqrt((sx * sx).sum(axis=(-2, -1)) * (sy * sy).sum(axis=(-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return tau, both.sum(axis=-1)


def kendall(scores: pd.DataFrame, boot: GroupedBootstrap) -> pd.DataFrame:
    """Kendall τ-b between the accuracy ranking and the LRS ranking per group (NaN below 2 methods)."""
    cells = boot.slots[CELL].merge(scores[CELL + ["acc_syn", "lrs_mean"]], on=CELL, how="left")
    tau, n = kendall_tau_b(boot.pad(cells["acc_syn"].to_numpy(float)), boot.pad(cells["lrs_mean"].to_numpy(float)))
    groups = boot.slots.drop_duplicates("g").sort_values("g")[GROUP].reset_index(drop=True)
    groups["n_methods"] = n
    groups["kendall_tau"] = np.where(n >= 2, tau, np.nan)
    return groups
