"""How long `build_report` takes on 100,000 synthetic store rows (target: < 5 s).

Run: `python -m benchmarks.report_aggregate [--rows N] [--repeats K] [--n-boot B]`. Prints the
median of K runs of the whole aggregation (scores, bootstrap intervals, rankings, Kendall τ,
accuracy table); rendering and plots are not included, they scale with the report, not the rows.
"""

from __future__ import annotations

import argparse
import statistics
import time

TARGET_S = 5.0


def main(rows: int = 100_000, repeats: int = 3, n_boot: int = 1000) -> dict[str, float]:
    """Time build_report on `rows` synthetic rows; returns the figures it prints."""
    from ddray.report import build_report
    from benchmarks.synthetic_rows import synthetic_rows_n

    df = synthetic_rows_n(rows)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = build_report(df, n_boot=n_boot)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(
        f"report_aggregate: {len(df):,} rows -> {len(report.scores):,} score cells, {len(report.kendall):,} groups; "
        f"build_report median of {repeats}: {median:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}; "
        f"n_boot {n_boot}; target < {TARGET_S:.0f} s: {'ok' if median < TARGET_S else 'SLOW'})"
    )
    return {"rows": float(len(df)), "median_s": median, "target_s": TARGET_S}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    main(args.rows, args.repeats, args.n_boot)
