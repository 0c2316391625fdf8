"""Slot scaling and fractional-GPU packing of ddray's runner on this machine.

Run: `python -m benchmarks.scaling [--trials N]`. Two measurements, each through `run_plan` (the
runner `ddray run` calls) on a local Ray started here with explicit resources:

1. 1 vs 2 slots: N independent CPU trials (quickstart recipe, random real IPC-10 subsets of digits
   with hard labels, one torch thread each) with Ray `num_cpus=1`, then `num_cpus=2`; speed-up =
   wall(1) / wall(2) of `run_plan` (Ray start-up excluded, Tuner start and worker warm-up included;
   target >= 1.8x on 2 cores). The trials' span (first start to last end) is reported too.
2. Fractional GPUs: Ray with one fake GPU (a logical resource; trials still compute on the CPU),
   8 trials asking `{cpu: 0.25, gpu: 0.25}`: the CPUs would admit all 8 at once, the GPU only 4.
   Concurrency is read from the rows' start/end times (end = row file mtime, start = end - wall_s).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.overhead import REPO, busy_cores, busy_warning, row_spans

TARGET_SPEEDUP = 1.8
TARGET_PACKING = 4
NOTES = (
    "Each run_plan pays a fixed ~2.5 s from Tuner start to the first trial (new worker processes import "
    "ray.tune and torch) and ~1 s of first-trial warm-up per worker, which 2 slots cannot halve; and Linux "
    "autogroup scheduling gives a session about one core when another session keeps the machine busy, "
    "whatever the nice level (the summary prints the cores busy before the benchmark)."
)


def _spec(seeds: int, resources: dict[str, float]):
    import yaml

    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    raw = yaml.safe_load((REPO / "specs" / "quickstart.yaml").read_text())
    raw.update(name="bench-scaling", methods={"random": {}}, ipc=[10], seeds=list(range(seeds)),
               arms=[{"arm": "rdm", "labels": "hard", "aug": True}], resources={"default": resources})
    raw.pop("store", None)
    return resolve_methods(parse_spec(raw))


@contextmanager
def local_ray(**resources):
    """A fresh local Ray of our own (never RAY_ADDRESS's cluster), workers at the driver's priority."""
    import ray

    saved = {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAY_worker_niceness")}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.setdefault("RAY_worker_niceness", "0")
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **resources)
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(spec, store: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """run_plan over the spec's evaluation trials only (no synthesis to wait for); wall and row spans."""
    from ddray.plan import Plan, make_plan
    from ddray.run import run_plan
    from ddray.store import Store

    full = make_plan(spec)
    evals = tuple(full.stage("eval"))
    plan = Plan(spec_name=full.spec_name, trials=evals, by_key={t.key: t for t in evals})
    t0 = time.perf_counter()
    summary = run_plan(spec, plan, Store(store), progress=False, roots={"digits": None})
    wall = time.perf_counter() - t0
    if summary.exit_code or summary.stored != len(evals):
        raise RuntimeError(f"scaling: run_plan stored {summary.stored} of {len(evals)} trials ({summary.failed})")
    return wall, row_spans(store, "eval", {t.key for t in evals})


def max_concurrency(spans) -> int:
    """Most trials running at one instant (an end at the same instant as a start does not overlap)."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return peak


def main(trials: int = 16, packed: int = 8) -> dict[str, float]:
    """Time 1 vs 2 slots and count the trials sharing a fake GPU; returns the figures it prints."""
    load = busy_cores()
    tmp = Path(tempfile.mkdtemp(prefix="ddray-bench-scaling-"))
    try:
        wall, span, per_trial = {}, {}, {}
        for slots in (1, 2):
            t0 = time.perf_counter()
            with local_ray(num_cpus=slots):
                init = time.perf_counter() - t0
                wall[slots], spans = _run(_spec(trials, {"cpu": 1}), str(tmp / f"slots{slots}"))
            span[slots] = max(e for _, e in spans.values()) - min(s for s, _ in spans.values())
            per_trial[slots] = sum(e - s for s, e in spans.values()) / len(spans)
            print(f"  scaling: {slots} slot(s): ray.init {init:.1f} s, run_plan {wall[slots]:.1f} s, "
                  f"trials' span {span[slots]:.1f} s, {per_trial[slots]:.2f} s per trial", flush=True)
        with local_ray(num_cpus=2, num_gpus=1):
            _, spans = _run(_spec(packed, {"cpu": 0.25, "gpu": 0.25}), str(tmp / "gpu"))
        peak = max_concurrency(list(spans.values()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    speedup, span_speedup = wall[1] / wall[2], span[1] / span[2]
    ok = speedup >= TARGET_SPEEDUP and peak == TARGET_PACKING
    print(
        f"scaling: {trials} independent CPU trials ({load:.1f} of {os.cpu_count()} cores busy before): 1 slot {wall[1]:.1f} s, "
        f"2 slots {wall[2]:.1f} s -> speed-up {speedup:.2f}x ({span_speedup:.2f}x over the trials' span; "
        f"{per_trial[1]:.2f} vs {per_trial[2]:.2f} s per trial), target >= {TARGET_SPEEDUP}x; "
        f"{packed} trials of gpu 0.25 / cpu 0.25 on 1 fake GPU + 2 CPUs: at most {peak} at once "
        f"(expected {TARGET_PACKING}): {'ok' if ok else 'MISSED'}"
    )
    if speedup < TARGET_SPEEDUP:
        print(f"scaling: {NOTES}")
    if warning := busy_warning(load, "scaling"):
        print(warning)
    return {"trials": float(trials), "wall_1slot_s": wall[1], "wall_2slots_s": wall[2], "speedup": speedup,
            "span_speedup": span_speedup, "gpu_trials_at_once": float(peak), "busy_cores_before": load}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="independent trials of the 1-vs-2-slot runs")
    parser.add_argument("--packed", type=int, default=8, help="gpu-0.25 trials of the packing run")
    args = parser.parse_args()
    main(args.trials, args.packed)
