"""Realistic synthetic store rows for the report's tests and benchmark: what a finished benchmark looks like, without training anything.

Why: the report is pure over rows, so its tests and its speed benchmark need many plausible rows
(full-data, synthesis and evaluation trials, shared random baselines, soft-label methods, two
tracks, diverged trials) far faster than any run could make them. Accuracies follow the shapes
seen in DD papers: random subsets improve with IPC, soft labels lift syn *and* rdm arms (the
DD-Ranking finding), augmentation helps a little, seeds add ~1 point of noise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ddray.store.schema import ROW_SCHEMA

FULL_ACC = {"digits": 0.98, "fashion-mnist": 0.93, "cifar10": 0.86, "cifar100": 0.58, "tinyimagenet": 0.45, "imagenet1k": 0.62}
NUM_CLASSES = {"digits": 10, "fashion-mnist": 10, "cifar10": 10, "cifar100": 100, "tinyimagenet": 200, "imagenet1k": 1000}
QUALITY = {"random": 0.0, "herding": 0.15, "kcenter": 0.1, "dm": 0.35, "sre2l": 0.3, "rded": 0.45}
SYNTH_SECONDS = {"random": 0.5, "herding": 20.0, "kcenter": 40.0, "dm": 900.0, "sre2l": 2400.0, "rded": 300.0}
ARCH_FACTOR = {"convnet-d3": 1.0, "convnet-d4": 0.98, "resnet18": 0.95, "resnet50": 0.9}


def _hash_hex(frame: pd.DataFrame) -> np.ndarray:
    """Stable 16-hex-digit content hash per row (stands in for ddray.keys' config hash)."""
    h = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return np.char.mod("%016x", h).astype(object)


def _grid(**axes: Iterable) -> pd.DataFrame:
    """Cartesian product of named axes as a frame (one row per combination)."""
    out = pd.DataFrame({"_": [0]})
    for name, values in axes.items():
        out = out.merge(pd.DataFrame({name: list(values), "_": 0}), on="_")
    return out.drop(columns="_")


def _rdm_acc(dataset: pd.Series, ipc: pd.Series) -> np.ndarray:
    full = dataset.map(FULL_ACC).fillna(0.7).to_numpy(float)
    chance = 1.0 / dataset.map(NUM_CLASSES).fillna(10).to_numpy(float)
    ipc = ipc.to_numpy(float)
    return chance + (full - chance) * ipc / (ipc + 40.0)


def synthetic_rows(
    *,
    methods: Sequence[str] = ("random", "herding", "dm", "sre2l", "rded"),
    soft_methods: Sequence[str] = ("sre2l", "rded"),
    datasets: Sequence[str] = ("cifar10", "cifar100"),
    ipcs: Sequence[int] = (1, 10),
    archs: Sequence[str] = ("convnet-d3",),
    seeds: Sequence[int] = (0, 1, 2),
    tracks: Sequence[str] = ("fixed",),
    with_cell: bool = True,
    diverged: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows with exactly `ROW_SCHEMA`'s columns and the dtypes `pyarrow.Table.to_pandas` gives.

    Full-data rows exist once per (dataset, arch, seed) in the `fixed` track (shared by every
    method and track); every method gets hard-label syn rows, soft methods also soft ones, with
    aug on and off; one rdm row per comparison cell. `diverged` is the fraction of eval rows
    marked diverged (top1 null).
    """
    rng = np.random.default_rng(seed)
    soft = [m for m in methods if m in set(soft_methods)]
    ev = _eval_rows(methods, soft, datasets, ipcs, archs, seeds, tracks, rng)  # draws in this order: the
    fr = _full_rows(datasets, archs, seeds, rng)                                # same rows for the same seed
    sy = _synth_rows(methods, datasets, ipcs, seeds, rng)
    rows = pd.concat([fr, sy, ev], ignore_index=True)
    _fill_bookkeeping(rows, sy, with_cell, diverged, rng)
    return to_schema(rows)


def _eval_rows(methods, soft, datasets, ipcs, archs, seeds, tracks, rng) -> pd.DataFrame:
    """syn rows of every method (hard labels; soft too for soft methods), aug on and off, and one
    rdm row per comparison cell, with accuracies shaped as in DD papers."""
    base = _grid(track=tracks, dataset=datasets, ipc=ipcs, arch=archs, seed=seeds)
    labels = pd.DataFrame({"labels": ["hard"] + (["soft"] if soft else [])})
    cells = base.merge(labels, how="cross").merge(pd.DataFrame({"aug": [True, False]}), how="cross")
    syn_methods = pd.DataFrame({"method": list(methods)})
    syn = cells.merge(syn_methods, how="cross")
    syn = syn[(syn["labels"] == "hard") | syn["method"].isin(soft)]
    syn = syn.assign(arm="syn")
    rdm = cells.assign(arm="rdm", method=None)
    ev = pd.concat([syn, rdm], ignore_index=True)
    ev["stage"] = "eval"

    r = _rdm_acc(ev["dataset"], ev["ipc"])
    full = ev["dataset"].map(FULL_ACC).fillna(0.7).to_numpy(float)
    q = ev["method"].map(QUALITY).fillna(0.25).to_numpy(float)
    q = np.where(ev["arm"] == "syn", q, 0.0)
    acc = r + q * (full - r) * 0.5
    acc = np.where(ev["labels"] != "hard", acc + (full - acc) * 0.4, acc)
    acc = np.where(ev["aug"], acc, acc - 0.03)
    acc = acc * ev["arch"].map(ARCH_FACTOR).fillna(0.95).to_numpy(float)
    acc = acc + np.where(ev["track"] == "tuned", 0.01, 0.0)
    chance = 1.0 / ev["dataset"].map(NUM_CLASSES).fillna(10).to_numpy(float)
    ev["top1"] = np.clip(acc + rng.normal(0.0, 0.01, len(ev)), chance / 2, 1.0)
    return ev


def _full_rows(datasets, archs, seeds, rng) -> pd.DataFrame:
    """One full-data row per (dataset, arch, seed), shared by every method and track."""
    fr = _grid(dataset=datasets, arch=archs, seed=seeds).assign(
        stage="full", track="fixed", arm="full", labels="hard", aug=True, method=None, ipc=None
    )
    fr["top1"] = np.clip(
        fr["dataset"].map(FULL_ACC).fillna(0.7).to_numpy(float) * fr["arch"].map(ARCH_FACTOR).fillna(0.95).to_numpy(float)
        + rng.normal(0.0, 0.005, len(fr)), 0.0, 1.0,
    )
    return fr


def _synth_rows(methods, datasets, ipcs, seeds, rng) -> pd.DataFrame:
    """One synthesis row per (method, dataset, IPC, seed), with its synthesis time."""
    sy = _grid(method=methods, dataset=datasets, ipc=ipcs, seed=seeds).assign(stage="synth", track="fixed")
    t = sy["method"].map(SYNTH_SECONDS).fillna(100.0).to_numpy(float) * (1 + sy["ipc"].to_numpy(float) / 10.0)
    sy["synth_s"] = t * rng.lognormal(0.0, 0.1, len(sy))
    sy["synth_device"] = "NVIDIA H100"
    return sy


def _fill_bookkeeping(rows: pd.DataFrame, sy: pd.DataFrame, with_cell: bool, diverged: float, rng) -> None:
    """The columns every row carries (keys, cells, status, timings, versions), in place."""
    is_eval = rows["stage"] == "eval"
    rows["protocol"] = np.where(rows["stage"] == "synth", None, np.where(rows["stage"] == "full", "full", "rd3"))
    rows["protocol_json"] = [json.dumps({"preset": p, "labels": lab}) if p else None for p, lab in zip(rows["protocol"], rows["labels"])]
    rows["teacher"] = np.where(is_eval & (rows["labels"] != "hard"), "teacher-" + rows["dataset"].astype(str), None)
    if with_cell:
        cell_cols = ["track", "dataset", "ipc", "arch", "labels", "aug", "seed", "protocol_json", "teacher"]
        rows["cell"] = np.where(is_eval, _hash_hex(rows[cell_cols]), None)
    else:
        rows["cell"] = None
    key_cols = ["stage", "track", "method", "dataset", "ipc", "arch", "arm", "labels", "aug", "seed", "protocol_json"]
    rows["key"] = _hash_hex(rows[key_cols])
    rows["config_json"] = "{}"
    n_div = int(round(diverged * is_eval.sum()))
    if n_div:
        idx = rng.choice(np.flatnonzero(is_eval.to_numpy()), size=n_div, replace=False)
        rows.loc[idx, "top1"] = np.nan
    rows["status"] = np.where(rows["top1"].isna() & (rows["stage"] != "synth"), "diverged", "ok")
    rows["top5"] = np.minimum(1.0, rows["top1"] + 0.2)
    rows["loss"] = 1.0 - rows["top1"].fillna(0.0)
    rows["epochs_run"] = np.where(rows["stage"] == "synth", None, 300)
    rows["wall_s"] = rng.uniform(10, 100, len(rows))
    rows["device"] = "cpu"
    syn_eval = is_eval & (rows["arm"] == "syn")
    times = sy.groupby(["method", "dataset", "ipc", "seed"])["synth_s"].first()
    looked = pd.MultiIndex.from_frame(rows.loc[syn_eval, ["method", "dataset", "ipc", "seed"]])
    rows.loc[syn_eval, "synth_s"] = times.reindex(looked).to_numpy()
    rows["ddray_version"] = "0.1.0"
    rows["torch_version"] = "2.15.0"
    rows["hostname"] = "synthetic"
    rows["finished_at"] = pd.Timestamp("2025-01-01", tz="UTC")


def to_schema(rows: pd.DataFrame) -> pd.DataFrame:
    """Round-trip through Arrow with ROW_SCHEMA, so dtypes match what the store hands the report."""
    table = pa.Table.from_pandas(rows.reindex(columns=ROW_SCHEMA.names), schema=ROW_SCHEMA, preserve_index=False)
    return table.to_pandas()


def synthetic_rows_n(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """About `n_rows` rows: 20 methods (8 soft), 5 datasets, 3 IPCs, 4 archs, 2 tracks, as many seeds as needed."""
    methods = [f"m{i:02d}" for i in range(20)]
    per_seed = 2 * 5 * 3 * 4 * (2 + 2 * 20 + 2 + 2 * 8)
    n_seeds = max(1, round(n_rows / per_seed))
    return synthetic_rows(
        methods=methods, soft_methods=methods[:8],
        datasets=("digits", "fashion-mnist", "cifar10", "cifar100", "tinyimagenet"), ipcs=(1, 10, 50),
        archs=("convnet-d3", "convnet-d4", "resnet18", "resnet50"), seeds=range(n_seeds),
        tracks=("fixed", "tuned"), diverged=0.01, seed=seed,
    )
