"""Check and normalize the rows the report reads (one per trial, `ROW_SCHEMA` columns).

Why a separate step: rows come from Parquet through Arrow, so nullable ints arrive as floats and
nullable bools as objects; and a percent accuracy (85.3 instead of 0.853) would silently break
every score. Everything downstream may assume the cleaned frame below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ddray.errors import InputError
from ddray.report.provenance import engine_versions
from ddray.report.variants import assign_variants, split_track
from ddray.store.schema import STAGES

ARMS = ("syn", "rdm", "full")
TRACKS = ("fixed", "tuned")
FALLBACK_CELL = ("dataset", "ipc", "arch", "labels", "aug", "seed", "protocol_json", "teacher")
"""What a comparison cell covers when a row has no `cell` hash: everything but the arm and method."""

KEEP = ("key", "stage", "track", "cell", "method", "dataset", "ipc", "arch", "arm", "labels", "aug", "seed", "protocol",
        "protocol_json", "teacher", "config_json", "status", "top1", "synth_s", "synth_device")
"""The columns the report reads; the others (provenance) are dropped early."""


def _bad_values(rows: pd.DataFrame, column: str, allowed: tuple[str, ...], where: pd.Series | None = None) -> list[str]:
    values = rows.loc[where, column] if where is not None else rows[column]
    bad = sorted({str(v) for v in values.dropna().unique()} - set(allowed))
    return [f"rows.{column}: unknown value '{b}'; known: {', '.join(allowed)}" for b in bad]


def prepare_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Validated copy with `acc` (top1 of ok rows, NaN otherwise), `diverged`, plain dtypes and `jk`,
    and the warnings of the preparation.

    Rows measured under different recipes get different tracks (`report/variants.py`) and a
    `variant` column (the part of the track after `:`, '' for a store of one recipe per cell).
    `jk` is the syn↔rdm join key: track + cell hash, or track + the fallback columns where a row
    has no cell. Raises InputError naming the column for missing columns, unknown stage/arm/track
    values, or accuracies outside [0, 1] (percentages).
    """
    missing = [c for c in KEEP if c not in rows.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)} (expected ddray.store.schema.ROW_SCHEMA)", path="rows")
    df = rows.loc[:, list(KEEP)].copy()
    problems = _bad_values(df, "stage", STAGES) + _bad_values(df, "track", TRACKS)
    problems += _bad_values(df, "arm", ARMS, where=df["stage"] == "eval")
    top1 = pd.to_numeric(df["top1"], errors="coerce").astype(float)
    out_of_range = (top1 < 0) | (top1 > 1)
    if out_of_range.any():
        first = df.loc[out_of_range.idxmax()]
        problems.append(
            f"rows.top1: accuracies must be fractions in [0, 1]; got {top1[out_of_range.idxmax()]} "
            f"(key {first['key']}); were percentages stored?"
        )
    if problems:
        raise InputError(problems)
    df["top1"] = top1
    df["diverged"] = (df["status"] == "diverged").to_numpy()
    df["acc"] = top1.where(df["status"] == "ok")
    df["ipc"] = pd.to_numeric(df["ipc"], errors="coerce").astype("Int64")
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("int64")
    df["synth_s"] = pd.to_numeric(df["synth_s"], errors="coerce").astype(float)
    # Null aug on an eval row means "the protocol's augmentation as configured", i.e. on.
    df["aug"] = df["aug"].astype(object).where(df["aug"].notna(), True).astype(bool)
    df.loc[df["stage"] == "full", "arm"] = "full"
    apart = _engines_apart(df, engine_versions(rows))
    df, warnings = assign_variants(df)
    warnings = apart + warnings
    df["variant"] = split_track(df["track"])[1]
    df["jk"] = _join_key(df)
    return df.drop(columns=["key", "cell", "protocol_json", "config_json"]), warnings


def _engines_apart(df: pd.DataFrame, engines: pd.Series) -> list[str]:
    """Rows of different engine versions go to different tracks (`fixed:engine=2`), in place.

    Why: an engine change can move numbers, so a cell of old and new rows would average two
    measurements; the report shows each engine's numbers apart and says so. A store of one engine
    version (the usual case) keeps its tracks as they are.
    """
    versions = sorted(set(engines))
    if len(versions) <= 1:
        return []
    df["track"] = df["track"].astype(str) + ":engine=" + engines.to_numpy()
    return [f"rows of engine versions {', '.join(versions)} are reported apart as tracks ':engine=V' "
            "(never averaged together); rerun the older ones to compare them"]


def _join_key(df: pd.DataFrame) -> np.ndarray:
    """Integer syn↔rdm join key: (track, cell), or (track, fallback columns) for rows without cell."""
    key = df.groupby(["track", "cell"], sort=False, dropna=False).ngroup().to_numpy()
    no_cell = (df["cell"].isna() & (df["stage"] == "eval")).to_numpy()
    if no_cell.any():
        sub = df.loc[no_cell, ["track", *FALLBACK_CELL]]
        key = key.copy()
        key[no_cell] = key.max() + 1 + sub.groupby(list(sub.columns), sort=False, dropna=False).ngroup().to_numpy()
    return key
