"""`make bench`: run the CPU benchmarks (and the GPU one where CUDA exists), rewrite docs/benchmarks.md.

Each benchmark module exposes `main() -> dict` and prints its own summary line (and its `NOTES`
when a target is missed); this runner records the machine, the date and the exact command beside
each figure, so that the doc can be regenerated and compared. Run it on an otherwise idle machine:
the scaling and overhead figures measure how the cores are shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
import time
from pathlib import Path

# (module, title, target) in the order they run; `make bench` runs them all.
BENCHMARKS = [
    ("report_aggregate", "Report aggregation, 100,000 store rows", "median < 5 s"),
    ("store_scale", "Store scale: `status`, `report`, no-op `run` at 1,000 and 10,000 rows, local folder and local S3",
     "at 10,000 rows each command < 5 s locally, < 15 s on S3; at 100,000 rows < 30 s locally "
     "(`python -m benchmarks.store_scale --rows 100000 --no-s3`)"),
    ("engine", "Engine throughput against the official ddranking 0.2.0", "ddray >= 3x faster on CPU"),
    ("overhead", "Orchestration overhead: plain loop vs `ddray run`", "ratio to ideal <= 1.15; no-op rerun < 5 s"),
    ("scaling", "Scaling: 1 vs 2 slots, fractional GPU packing", ">= 1.8x; 4 trials per GPU at gpu 0.25"),
    ("memory", "Memory: what a trial holds, one decoded copy per node",
     "syn/rdm peak RSS within 5% from 20 to 200 train JPEGs per class; data held <= 1.5x the uint8 bytes read; "
     "two trials on a node < 1.3x one trial's data; warm decode < 10% of cold"),
]
GPU = ("gpu", "GPU packing: trials/hour at gpu 1, 1/2, 1/4, 1/8; one syn trial with a uint8 test split",
       "best default fraction per arch")
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform(terse=True)}"


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def section(name: str, title: str, target: str, figures: dict, seconds: float, notes: str | None) -> list[str]:
    lines = [f"## {title}", "", f"Command: `python -m benchmarks.{name}` ({seconds:.0f} s). Target: {target}.", ""]
    if figures:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in figures.items()]
    else:
        lines.append("Skipped on this machine.")
    if notes:
        lines += ["", notes]
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="run only these benchmark modules (the doc keeps the others' text out)")
    args = ap.parse_args(argv)
    import torch

    todo = [b for b in BENCHMARKS if not args.only or b[0] in args.only]
    if torch.cuda.is_available() and (not args.only or GPU[0] in args.only):
        todo.append(GPU)
    t_all = time.perf_counter()
    body: list[str] = []
    for name, title, target in todo:
        mod = importlib.import_module(f"benchmarks.{name}")
        t0 = time.perf_counter()
        figures = mod.main()
        seconds = time.perf_counter() - t0
        body += section(name, title, target, figures, seconds, getattr(mod, "NOTES", None))
    head = ["# Benchmarks", "",
            f"Written by `make bench` (`python -m benchmarks`) on {dt.date.today().isoformat()} in "
            f"{time.perf_counter() - t_all:.0f} s, on {machine()}; torch {torch.__version__}. "
            "Each figure is a median of several runs where the module says so; ratios matter more than "
            "absolute times. Each section's notes say where the time goes and, where a target is missed, "
            "what limits it.", ""]
    if not torch.cuda.is_available():
        head += ["No CUDA device here: `python -m benchmarks.gpu` (N engine processes per GPU, no Ray needed) "
                 "was not run. On a GPU machine `make bench` adds its section (trials/hour per fraction, peak memory).", ""]
    DOC.write_text("\n".join(head + body))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
