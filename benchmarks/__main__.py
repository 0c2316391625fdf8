"""`make bench`: run the CPU benchmarks and rewrite docs/benchmarks.md with their figures.

Each benchmark module exposes `main() -> dict` and prints its own line; this runner records the
machine, the date and the exact command beside each figure, so the doc can be regenerated.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path

from benchmarks import report_aggregate

BENCHMARKS = [
    ("report aggregation (100,000 rows, target < 5 s)", "python -m benchmarks.report_aggregate", report_aggregate.main),
]
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform(terse=True)}"


def main() -> int:
    lines = ["# Benchmarks", "",
             f"Written by `make bench` on {dt.date.today().isoformat()} ({machine()}). Medians of several runs.", "",
             "| benchmark | command | figure |", "| --- | --- | --- |"]
    for title, command, fn in BENCHMARKS:
        fig = fn()
        figure = ", ".join(f"{k} {v:.3g}" for k, v in fig.items())
        lines.append(f"| {title} | `{command}` | {figure} |")
    lines += ["", "Pending (see the benchmarks issue): orchestration overhead vs a plain loop, engine",
              "throughput against the official ddranking package, 1-vs-2 slot scaling, GPU packing.", ""]
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
