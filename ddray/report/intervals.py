"""How uncertain a cell's mean over seeds is: a Student t-interval, and a seed bootstrap.

Why two: a benchmark has few seeds (3 is usual). The seed bootstrap resamples those seeds, and
with n seeds there are only C(2n−1, n) distinct resamples (10 for n = 3, 3 for n = 2), so its
2.5–97.5 percentiles are coarse and narrower than the truth at small n: it describes the spread
of these seeds, it is not a 95% confidence interval. The t-interval, mean ± t(1−α/2, n−1)·s/√n
with the sample std s, is exact for normal seed noise at any n ≥ 2, and widens as honestly as it
should when n is small (t = 12.7 for n = 2, 4.3 for n = 3). It is shown from two seeds on:
two seeds do pin the mean down only that loosely, and hiding the interval would hide exactly
that; one seed has no spread to measure (missing, with the reason in the display tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ddray.report.aggregate import CELL, Settings
from ddray.report.bootstrap import GroupedBootstrap, nan_quantiles

INTERVAL_COLUMNS = ("lrs", "ars", "acc_syn")  # per-seed columns whose cell mean gets intervals
MIN_SEEDS_T = 2


def t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) = mean ∓ t((1+ci)/2, n−1)·std/√n elementwise; NaN where n < MIN_SEEDS_T (or mean is NaN).

    `std` is the sample std (ddof 1) of the n values whose mean is `mean`.
    """
    mean, std, n = (np.asarray(v, dtype=float) for v in (mean, std, n))
    ok = n >= MIN_SEEDS_T
    dof = np.where(ok, n - 1, 1.0)
    half = stats.t.ppf((1.0 + ci) / 2.0, dof) * std / np.sqrt(np.where(ok, n, 1.0))
    return np.where(ok, mean - half, np.nan), np.where(ok, mean + half, np.nan)


def add_intervals(scores: pd.DataFrame, ps: pd.DataFrame, boot: GroupedBootstrap, settings: Settings) -> pd.DataFrame:
    """Per cell and per column in INTERVAL_COLUMNS: seed bootstrap `<col>_lo/_hi`, then `<col>_t_lo/_t_hi`.

    The t-interval always uses the sample std, also in compat mode (whose displayed std is the
    package's population std): it is what the t distribution is defined with.
    """
    tail = (1.0 - settings.ci) / 2.0
    boot_ci = boot.slots[CELL].copy()
    for col in INTERVAL_COLUMNS:
        boot_ci[f"{col}_lo"], boot_ci[f"{col}_hi"] = nan_quantiles(boot.cell_values(col), (tail, 1 - tail), axis=1)
    g = ps.groupby(CELL, sort=False, dropna=False)[list(INTERVAL_COLUMNS)]
    mean, std, n = g.mean(), g.std(ddof=1), g.count()
    t_ci = pd.DataFrame(index=mean.index)
    for col in INTERVAL_COLUMNS:
        t_ci[f"{col}_t_lo"], t_ci[f"{col}_t_hi"] = t_interval(mean[col], std[col], n[col], settings.ci)
    return scores.merge(boot_ci, on=CELL, how="left").merge(t_ci.reset_index(), on=CELL, how="left")
