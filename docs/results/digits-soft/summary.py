"""The study's one table, over every variant store under /tmp/ddray-digits-soft (or argv[1]).

Each cell is a mean ± std over seeds of the top-1 (%) that `ddray report STORE --format md` shows
per store; `Δ hard` is the mean of the 6 runs (rdm + random, 3 seeds) minus that of hard labels at
the same IPC, epochs and crop. Read from the stored rows (the Parquet files), nothing recomputed.

    PYTHONPATH=$PWD python docs/results/digits-soft/summary.py
"""

import glob
import json
import statistics as st
import sys

import pyarrow.parquet as pq

CROP_ORDER = {"off": 0, "0.5-1": 1, "0.08-1": 2}


def read_rows(root: str) -> list[dict]:
    rows = []
    for f in glob.glob(f"{root}/*/rows/eval/*.parquet"):
        r = pq.read_table(f).to_pylist()[0]
        c = json.loads(r["config_json"])
        p = c["protocol"]
        soft = r["labels"] != "hard"
        checkpoint = (c.get("teachers") or [{}])[0].get("checkpoint") or ""
        rows.append({
            "ipc": r["ipc"], "epochs": p["epochs"], "labels": r["labels"],
            "teacher": ("crops" if "teacher-aug" in checkpoint else "quickstart") if soft else "",
            "tau": f"{p['temperature']:g}" if soft else "",
            "crop": f"{p['augment']['rrc_scale'][0]:g}-1" if r["aug"] else "off",
            "arm": "rdm" if r["arm"] == "rdm" else "random", "seed": r["seed"], "top1": 100 * r["top1"],
        })
    return rows


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{st.mean(values):.1f} ± {st.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(rows: list[dict]) -> str:
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["ipc"], r["epochs"], r["labels"], r["teacher"], r["tau"], r["crop"]), []).append(r)
    hard = {(k[0], k[1], k[5]): st.mean(r["top1"] for r in v) for k, v in cells.items() if k[2] == "hard"}
    out = ["| IPC | epochs | labels | teacher | τ | crop | rdm | random | mean (6) | Δ hard |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(cells, key=lambda k: (k[0], k[1], CROP_ORDER[k[5]], k[2] != "hard", k[3] != "quickstart", float(k[4] or 0)))
    for k in order:
        v = cells[k]
        mean = st.mean(r["top1"] for r in v)
        ref = hard.get((k[0], k[1], k[5]))
        delta = "" if k[2] == "hard" or ref is None else f"{mean - ref:+.1f}"
        arms = [_cell([r["top1"] for r in v if r["arm"] == a]) for a in ("rdm", "random")]
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | {arms[0]} | {arms[1]} | {mean:.1f} | {delta} |")
    return "\n".join(out)


if __name__ == "__main__":
    print(table(read_rows(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ddray-digits-soft")))
