"""Report figures (matplotlib, Agg backend: no display needed, safe in workers and CI).

Three views: accuracy against time-to-synthesize (is the expensive method worth it?), LRS/ARS
bars with their bootstrap intervals (is the gap bigger than the seed noise?), and syn against
rdm accuracy (how far above a random subset each method really is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ddray.report.build import Report  # noqa: E402
from ddray.report.colors import legend_metadata, method_color  # noqa: E402
from ddray.report.tracks import track_title  # noqa: E402

MARKERS = "osD^v<>pPX*h"
HATCHES = ("", "//", "..", "xx", "\\\\", "oo")


@dataclass(frozen=True)
class Figure:
    """One written PNG and what it shows: its kind ('time_vs_acc', 'scores', 'syn_vs_rdm') and
    the facets it is drawn for (track, dataset, ipc; absent when it covers all of them).

    Why facets travel with the file: the HTML page files each figure beside the table it shows
    and hides it with the table rows its filters hide, without parsing file names.
    """

    path: Path
    kind: str
    facets: dict[str, str] = field(default_factory=dict)


def _slug(*parts: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _save(fig: plt.Figure, out_dir: Path, kind: str, methods: list[str], **facets: object) -> Figure:
    """Write the figure as `<kind>_<facet values>.png`, its legend's colours in the PNG's text, and close it."""
    path = out_dir / f"{_slug(kind, *(v if k != 'ipc' else f'ipc{v}' for k, v in facets.items()))}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata=legend_metadata(methods))
    plt.close(fig)
    return Figure(path, kind, {k: str(v) for k, v in facets.items()})


def plot_time_vs_accuracy(report: Report, out_dir: Path) -> list[Figure]:
    """Acc(syn, L) against median time-to-synthesize, one figure per (track, dataset, IPC).

    The time axis is symlog (linear below 1 s): a method that needs no synthesis (random) sits
    at 0 s, where it belongs, instead of at an arbitrary small value on a log axis.
    """
    s = report.scores.merge(report.synth[["method", "dataset", "ipc", "synth_s"]].rename(columns={"synth_s": "t"}),
                            on=["method", "dataset", "ipc"], how="left")
    s["t"] = s["t"].fillna(s["synth_s"])
    s = s[s["t"].notna() & (s["t"] >= 0) & s["acc_syn"].notna()]
    paths = []
    for (track, dataset, ipc), sub in s.groupby(["track", "dataset", "ipc"], sort=True):
        fig, ax = plt.subplots(figsize=(6, 4))
        archs = sorted(sub["arch"].unique())
        for method, ms in sub.groupby("method", sort=True):
            for arch, a in ms.groupby("arch"):
                ax.scatter(a["t"], a["acc_syn"] * 100, color=method_color(method), marker=MARKERS[archs.index(arch) % len(MARKERS)],
                           label=f"{method} ({arch})" if len(archs) > 1 else method)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=-0.1)
        ax.set_xlabel("time to synthesize (s; linear below 1 s, log above)")
        ax.set_ylabel("accuracy % (syn, method's labels)")
        ax.set_title(f"{dataset}, IPC {ipc}, {track_title(track)}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
        paths.append(_save(fig, out_dir, "time_vs_acc", sorted(sub["method"].unique()), track=track, dataset=dataset, ipc=ipc))
    return paths


def plot_scores(report: Report, out_dir: Path) -> list[Figure]:
    """LRS and ARS bars per method (one bar per arch) with bootstrap 95% error bars."""
    scale = report.settings.score_scale
    paths = []
    for (track, dataset, ipc), sub in report.scores.groupby(["track", "dataset", "ipc"], sort=True):
        methods = sorted(sub["method"].unique())
        archs = sorted(sub["arch"].unique())
        width = 0.8 / len(archs)
        fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(methods) + 2), 4))
        for ax, key in zip(axes, ("lrs", "ars")):
            for j, arch in enumerate(archs):
                a = sub[sub["arch"] == arch].set_index("method").reindex(methods)
                mean = a[f"{key}_mean"].to_numpy(float) * scale
                err = np.vstack([mean - a[f"{key}_lo"].to_numpy(float) * scale, a[f"{key}_hi"].to_numpy(float) * scale - mean])
                x = np.arange(len(methods)) + (j - (len(archs) - 1) / 2) * width
                ax.bar(x, np.nan_to_num(mean), width, yerr=np.nan_to_num(np.abs(err)), capsize=3, label=arch,
                       color=[method_color(m) for m in methods], hatch=HATCHES[j % len(HATCHES)], edgecolor="white")
                for xi, m in zip(x, mean):
                    if np.isnan(m):
                        ax.annotate("n/a", (xi, 0), ha="center", va="bottom", fontsize=7)
            ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right")
            ax.set_title(f"{key.upper()} ({'raw' if report.settings.compat else '×100'})")
            if len(archs) > 1:
                ax.legend(fontsize=7)
        fig.suptitle(f"{dataset}, IPC {ipc}, {track_title(track)}", fontsize=10)
        paths.append(_save(fig, out_dir, "scores", methods, track=track, dataset=dataset, ipc=ipc))
    return paths


def plot_syn_vs_rdm(report: Report, out_dir: Path) -> list[Figure]:
    """Acc(syn, L) against Acc(rdm, L) per (track, dataset); the diagonal is 'no better than random'."""
    s = report.scores[report.scores["acc_syn"].notna() & report.scores["acc_rdm"].notna()]
    paths = []
    for (track, dataset), sub in s.groupby(["track", "dataset"], sort=True):
        fig, ax = plt.subplots(figsize=(5, 5))
        for method, ms in sub.groupby("method", sort=True):
            ax.scatter(ms["acc_rdm"] * 100, ms["acc_syn"] * 100, color=method_color(method), label=method)
            for x, y, ipc in zip(ms["acc_rdm"] * 100, ms["acc_syn"] * 100, ms["ipc"]):
                ax.annotate(f"IPC {ipc:g}", (x, y), textcoords="offset points", xytext=(4, -9), fontsize=6,
                            color=method_color(method))
        lo = float(min(sub["acc_rdm"].min(), sub["acc_syn"].min()) * 100)
        hi = float(max(sub["acc_rdm"].max(), sub["acc_syn"].max()) * 100)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="syn = rdm")
        ax.set_xlabel("rdm accuracy %")
        ax.set_ylabel("syn accuracy %")
        ax.set_title(f"{dataset}, {track_title(track)}\n(every IPC and arch; below the diagonal: worse than random)",
                     fontsize=9)
        ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir, "syn_vs_rdm", sorted(sub["method"].unique()), track=track, dataset=dataset))
    return paths


def draw_figures(report: Report, out_dir: str | Path) -> list[Figure]:
    """Write every figure as PNG under out_dir; returns them with their facets (none for an empty report)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if report.scores.empty:
        return []
    return plot_time_vs_accuracy(report, out) + plot_scores(report, out) + plot_syn_vs_rdm(report, out)


def write_plots(report: Report, out_dir: str | Path) -> list[Path]:
    """Write every figure as PNG under out_dir; returns their paths (none for an empty report)."""
    return [f.path for f in draw_figures(report, out_dir)]
