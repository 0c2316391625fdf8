"""`build_report`: rows in, every table of the unified benchmark report out (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ddray.errors import InputError
from ddray.report import metrics
from ddray.report.aggregate import Settings, accuracy_table, cell_scores, per_seed, synth_table, tuning_table
from ddray.report.frame import prepare_rows
from ddray.report.intervals import add_intervals
from ddray.report.rankings import kendall, rankings, seed_bootstrap


@dataclass(frozen=True)
class Report:
    """All tables of one report; accuracies and scores are stored raw (fractions, score ∈ [0, 1]).

    - `scores`: per (track, method, dataset, ipc, arch): L, n_seeds, mean accuracies, HLR, IOR,
      `lrs_mean/std/of_mean/n/reason`, the same for `ars`, synth_s, and the intervals of the mean
      over seeds of lrs, ars and acc_syn: seed bootstrap `<col>_lo/_hi` and Student t
      `<col>_t_lo/_t_hi` (see report/intervals.py).
    - `per_seed`: the inputs and scores of every (cell, seed).
    - `accuracy`: mean ± std per (track, dataset, ipc, arch, method, arm, labels, aug); the
      random baseline (`method` "rdm") and full data (`method` "full", ipc null) as own rows.
    - `rankings`: ranks by LRS/ARS/accuracy, bootstrap rank intervals, λ/γ rank ranges.
    - `kendall`: τ between the accuracy and LRS rankings per (track, dataset, ipc, arch).
    - `tuning`: fixed vs tuned per cell with gains (empty unless both tracks are present).
    - `synth`: time-to-synthesize per (method, dataset, ipc).
    - `newest_finished_at`: when the newest trial row finished (UTC), the date a leaderboard entry carries.
    - `coverage`: per (track, dataset, arch, method, IPC) seeds planned / stored / errored and the
      cell's state (`report/coverage.py`); None when the report was built from rows alone.
    """

    settings: Settings
    scores: pd.DataFrame
    per_seed: pd.DataFrame
    accuracy: pd.DataFrame
    rankings: pd.DataFrame
    kendall: pd.DataFrame
    tuning: pd.DataFrame
    synth: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)
    newest_finished_at: pd.Timestamp | None = None
    coverage: pd.DataFrame | None = None

    @property
    def tracks(self) -> list[str]:
        """Tracks present, fixed first (scores of different tracks are never mixed)."""
        return sorted(set(self.accuracy["track"]) if len(self.accuracy) else set(),
                      key=lambda t: (not t.startswith("fixed"), t))

    def tables(self) -> dict[str, pd.DataFrame]:
        """Named tables in report order (what csv/json/html write); coverage only when known."""
        out = {
            "scores": self.scores, "accuracy": self.accuracy, "rankings": self.rankings, "kendall": self.kendall,
            "tuning": self.tuning, "synth": self.synth, "per_seed": self.per_seed,
        }
        return out if self.coverage is None else {**out, "coverage": self.coverage}

    def score_cells(self) -> pd.DataFrame:
        """`scores` in the order every per-cell export and the page use (track, dataset, IPC, arch,
        method), with the cell's ranks and its planned seeds (`planned`, NaN when unknown)."""
        if self.scores.empty:
            return self.scores.assign(rank_lrs=[], rank_ars=[], planned=[])
        s = self.scores.assign(planned=self.planned_seeds())
        keys = ["track", "method", "dataset", "ipc", "arch"]
        s = s.merge(self.rankings[keys + ["rank_lrs", "rank_ars", "rank_acc"]], on=keys, how="left")
        return s.sort_values(["track", "dataset", "ipc", "arch", "method"]).reset_index(drop=True)

    def planned_seeds(self) -> pd.Series:
        """Seeds planned per scores row (aligned with `scores`); NaN where no plan is known."""
        if self.coverage is None or self.scores.empty:
            return pd.Series(float("nan"), index=self.scores.index)
        keys = ["track", "dataset", "arch", "method", "ipc"]
        cov = self.coverage.assign(ipc=self.coverage["ipc"].astype("int64")).set_index(keys)["seeds_planned"]
        idx = pd.MultiIndex.from_frame(self.scores[keys].astype({"ipc": "int64"}))
        return pd.Series(cov.reindex(idx).to_numpy(float), index=self.scores.index)


def build_report(
    rows: pd.DataFrame,
    lam: float = 0.5,
    gamma: float = 0.5,
    compat: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> Report:
    """Aggregate trial rows (ROW_SCHEMA columns, one per trial) into a `Report`.

    Same rows and arguments always give the same numbers (the bootstrap is seeded per group).
    Raises `ddray.errors.InputError` for bad rows (missing columns, percent accuracies) or bad
    arguments (λ, γ outside [0, 1], unknown compat mode, n_boot < 1).
    """
    metrics.check_weight(lam, "lambda")
    metrics.check_weight(gamma, "gamma")
    metrics.check_compat(compat)
    if int(n_boot) < 1:
        raise InputError(f"must be >= 1, got {n_boot}", path="n_boot")
    if not 0.0 < ci < 1.0:
        raise InputError(f"must be in (0, 1), got {ci}", path="ci")
    settings = Settings(lam=float(lam), gamma=float(gamma), compat=compat, n_boot=int(n_boot), seed=int(seed), ci=float(ci))
    df, warnings = prepare_rows(rows)
    ps, more = per_seed(df, settings)
    warnings += more
    scores = cell_scores(ps, settings)
    if len(scores):
        boot = seed_bootstrap(ps, settings)
        scores = add_intervals(scores, ps, boot, settings)
        ranks, tau = rankings(scores, ps, boot, settings), kendall(scores, boot)
    else:
        ranks = pd.DataFrame(columns=["track", "method", "dataset", "ipc", "arch"])
        tau = pd.DataFrame(columns=["track", "dataset", "ipc", "arch", "n_methods", "kendall_tau"])
    synth = synth_table(df)
    return Report(
        settings=settings,
        scores=scores,
        per_seed=ps.drop(columns=["cid"], errors="ignore"),
        accuracy=accuracy_table(df, settings),
        rankings=ranks,
        kendall=tau,
        tuning=tuning_table(scores),
        synth=synth,
        warnings=tuple(dict.fromkeys(warnings)),  # one line per fact, however many tracks share it
        newest_finished_at=_newest(rows),
    )


def _newest(rows: pd.DataFrame) -> pd.Timestamp | None:
    """The latest `finished_at` of the rows (UTC), None when no row has one."""
    t = pd.to_datetime(rows["finished_at"], utc=True, errors="coerce").max() if len(rows) else pd.NaT
    return None if pd.isna(t) else t
