"""`ddray audit`: re-run stored trials into a scratch store and say whether their numbers reproduce.

A months-long benchmark is only as good as the claim that each row is what its config says. The
audit checks that claim directly: it re-runs N stored trials (at random, seeded, or a `--only`
slice) in this process, reading the artifacts they depend on (distilled sets, teacher weights)
from a copy in a scratch store, so the audited store is never written. Per trial it reports the
stored and the re-run accuracy (exact, or by how much), whether the inputs' digests still match
what the row recorded, and whether the hardware and engine version are the ones that produced it.

On CPU a re-run is expected bit-exact on the same CPU model; on a GPU, within `GPU_TOLERANCE`
(cuDNN kernels and atomics are not bit-reproducible across runs or cards).
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from ddray.stored import open_benchmark
from ddray.digests import stale_inputs
from ddray.engine import ENGINE_VERSION
from ddray.store import Store
from ddray.trials import Trial, parse_config

GPU_TOLERANCE = 0.005
"""Largest |Δtop1| (a fraction: 0.5 points) a GPU re-run may differ by and still reproduce."""

_FIELDS = ("method", "dataset", "ipc", "arch", "seed")


@dataclass(frozen=True)
class Audited:
    """One re-run trial: its stored and new numbers, and whether what produced them still matches."""

    key: str
    label: str
    stored_top1: float | None
    rerun_top1: float | None
    exact: bool
    reproduces: bool        # exact on CPU; within GPU_TOLERANCE on a GPU
    inputs: str             # "match", "changed: <roles>", or "not recorded (...)"
    hardware: str           # "same (...)", "differs (...)", or "unknown (...)"
    engine: str             # "same (1)" or "stored 1, now 2"

    @property
    def diff(self) -> float | None:
        if self.stored_top1 is None or self.rerun_top1 is None:
            return None
        return self.rerun_top1 - self.stored_top1

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "diff": self.diff}


def choose(rows: list[dict[str, Any]], only: Mapping[str, set[str]], stage: str, sample: int, seed: int) -> list[dict]:
    """The rows to audit: those of `stage` matching `only` (row columns), `sample` of them at random (seeded)."""
    fit = [r for r in rows if r["stage"] == stage and r.get("track", "fixed") == "fixed"
           and all(str(r.get(f)) in vals for f, vals in only.items())]
    fit.sort(key=lambda r: r["key"])
    return random.Random(seed).sample(fit, min(sample, len(fit)))


def _trial(row: Mapping[str, Any], planned: Mapping[str, Trial]) -> Trial:
    """The planned trial of a row, or one rebuilt from its config (its deps read from the config)."""
    if row["key"] in planned:
        return planned[row["key"]]
    config = parse_config(json.loads(row["config_json"]))
    deps = [t.key for t in getattr(config, "teachers", None) or () if t.key]
    synth = getattr(config, "synth", None)
    return Trial(config=config, deps=tuple(deps + ([synth] if synth else [])))


def _copy_deps(src: Store, dst: Store, keys: tuple[str, ...]) -> None:
    """Copy the artifacts (distilled sets, teacher weights) of `keys` into the scratch store; never resume checkpoints."""
    kinds = [i.base_name for i in src.loc.fs.get_file_info(pafs.FileSelector(src.path("artifacts"), allow_not_found=True))
             if i.type == pafs.FileType.Directory and i.base_name != "ckpt"]
    for kind in kinds:
        for key in keys:
            folder = src.artifact_dir(kind, key)
            if src.loc.fs.get_file_info(folder).type != pafs.FileType.Directory:
                continue
            for info in src.loc.fs.get_file_info(pafs.FileSelector(folder, recursive=True)):
                if info.type == pafs.FileType.File:
                    rel = info.path[len(folder):].lstrip("/")
                    with src.loc.fs.open_input_stream(info.path) as f:
                        dst.put_artifact(kind, key, rel, f.read())


def _hardware(row: Mapping[str, Any], now: str) -> str:
    stored = row.get("hardware")
    if stored:
        return f"same ({now})" if stored == now else f"differs (row: {stored}; here: {now})"
    return f"unknown (the row records only '{row.get('device')}'; here: {now})"


def _inputs(row: Mapping[str, Any], now: str | None) -> str:
    if not row.get("inputs_json"):
        return "not recorded (a row of layout 1)"
    changed = stale_inputs(json.loads(row["inputs_json"]), json.loads(now or "{}"))
    return "match" if not changed else f"changed: {', '.join(changed)}"


def audit_store(uri: str, *, sample: int = 3, only: Mapping[str, set[str]] | None = None, stage: str = "eval",
                seed: int = 0, scratch: str | None = None) -> list[Audited]:
    """Re-run `sample` stored trials of the store at `uri` (see the module doc); the store is only read."""
    import torch

    from ddray.run.execute import execute, hardware_name
    from ddray.run.worker_env import WorkerEnv

    bench = open_benchmark(uri, require_spec=False)
    rows = bench.store.read_table().to_pylist()
    planned = bench.plan.by_key if bench.plan is not None else {}
    roots = {n: d.root for n, d in bench.spec.datasets.items()} if bench.spec is not None else {}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    scratch_store = Store(scratch or tempfile.mkdtemp(prefix="ddray-audit-"))
    out = []
    for row in choose(rows, only or {}, stage, sample, seed):
        trial = _trial(row, planned)
        _copy_deps(bench.store, scratch_store, trial.deps)
        new = execute(trial, WorkerEnv(store=scratch_store.loc.root, roots=roots), device)
        scratch_store.write_row(new)
        exact = new.top1 == row["top1"]
        close = exact or (device.type == "cuda" and new.top1 is not None and row["top1"] is not None
                          and abs(new.top1 - row["top1"]) <= GPU_TOLERANCE)
        engine = row.get("engine_version") or "1"
        out.append(Audited(
            key=trial.key, label=trial.label, stored_top1=row["top1"], rerun_top1=new.top1, exact=exact,
            reproduces=close, inputs=_inputs(row, new.inputs_json), hardware=_hardware(row, hardware_name(device)),
            engine=f"same ({engine})" if engine == ENGINE_VERSION else f"stored {engine}, now {ENGINE_VERSION}"))
    return out


def audit_text(results: list[Audited]) -> str:
    """One paragraph per audited trial, then a one-line verdict."""
    lines = []
    for r in results:
        if r.exact:
            verdict = f"exact (top1 {r.stored_top1:.4f})"
        elif r.diff is not None:
            verdict = f"differs by {r.diff * 100:+.2f} points (stored {r.stored_top1:.4f}, re-run {r.rerun_top1:.4f})"
        else:
            verdict = f"no accuracy to compare (stored {r.stored_top1}, re-run {r.rerun_top1})"
        lines.append(f"{r.key} {r.label}: {verdict}; inputs {r.inputs}; hardware {r.hardware}; engine {r.engine}")
    good = sum(r.reproduces for r in results)
    lines.append(f"{good} of {len(results)} audited trials reproduce")
    return "\n".join(lines)
