"""How the commands that read a store scale with its rows, on a local folder and on a local S3 server.

Run: `python -m benchmarks.store_scale [--rows 1000 10000 100000] [--no-s3]`. For each size a
synthetic benchmark is planned (digits, the random method, one rdm arm with hard labels: a
synthesis and an evaluation per seed and IPC, each with its valid planned key; see `_spec`) and
one row per trial is written with the store's
own row writer (`make_row` + `Store.write_row`: real, self-verifying Parquet rows; the numbers in
them are made up). Then, each as the user runs it (a fresh `ddray` process, interpreter start-up
and imports included):

- `ddray status` before any index exists (every row file read and verified, as before the index),
- `ddray store compact` (the first one reads every file once),
- `ddray status`, `ddray report --format csv` and a no-op `ddray run SPEC` on the indexed store,
- `ddray --version` (what any fresh process costs before it reads a store),

and in-process (no start-up): planning the spec, one `Store.scan`, `store_status` and `report_store`.
The S3 store is the local one uploaded as is (`pyarrow.fs.copy_files`) to a moto server in this
process; moto answers from Python, so its figures are an upper bound for a real object store's
request count, not its latency. Targets (2 cores): at 10,000 rows each command < 5 s locally and
< 15 s on S3; at 100,000 rows < 30 s locally.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.overhead import REPO, busy_cores, busy_warning

TARGETS = {(10_000, "local"): 5.0, (10_000, "s3"): 15.0, (100_000, "local"): 30.0}
COMMANDS = ("status", "report", "noop_run")
MAX_IPC = 100  # `ddray run` checks each IPC against the smallest digits class (139 train images)
NOTES = (
    "Times are wall seconds of one fresh `ddray` process each (about 2-3 s of it is Python start-up and "
    "imports on this machine). `cold` is `ddray status` on the store without its index: every row file read "
    "and verified, which is what every command cost before the index. Planning a spec grows with its trials "
    "whatever the store holds; `status`, `report` and `run` plan the stored specs too."
)


def _spec(n: int, store: str) -> dict:
    """`n` trials: a synthesis and an rdm evaluation per (seed, IPC), IPCs 1 to at most MAX_IPC.

    Why not n/2 seeds: a spec lists its values, and a list of 50,000 seeds is a YAML file that takes
    longer to parse than the store to read; real specs are short products (methods x IPCs x seeds).
    """
    pairs = n // 2
    ipcs = max(d for d in range(1, MAX_IPC + 1) if pairs % d == 0)
    return {"name": f"store-scale-{n}", "store": store, "datasets": {"digits": {}}, "methods": {"random": {}},
            "ipc": list(range(1, ipcs + 1)), "archs": ["convnet-d1-w16"], "seeds": list(range(pairs // ipcs)),
            "protocol": "rd3",
            "arms": [{"arm": "rdm", "labels": "hard", "aug": False}], "overrides": {"epochs": 3},
            "resources": {"default": {"cpu": 1}}}


def write_store(n: int, root: Path) -> tuple[Path, float, float]:
    """A store of `n` rows written by the store's own writer; (spec file, plan s, write s)."""
    import yaml

    from ddray.plan import make_plan
    from ddray.run.execute import make_row
    from ddray.run.outcome import Outcome
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods
    from ddray.store import Store

    spec = _spec(n, str(root / "store"))
    text = yaml.safe_dump(spec, sort_keys=False)
    path = root / "spec.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    plan = make_plan(resolve_methods(parse_spec(spec)))
    plan_s = time.perf_counter() - t0
    assert len(plan.trials) == n, (len(plan.trials), n)
    store = Store(spec["store"])
    store.save_spec(text)
    rng = random.Random(0)
    rows = []
    for t in plan.trials:
        acc = rng.uniform(0.2, 0.9)
        rows.append(make_row(t, Outcome(top1=acc, top5=min(1.0, acc + 0.1), loss=1 - acc, epochs_run=3),
                             rng.uniform(1, 5), "cpu (synthetic)"))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:  # each write waits on its fsync: many at once, as workers do
        assert all(pool.map(store.write_row, rows))
    return path, plan_s, time.perf_counter() - t0


def _ddray(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ddray.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ddray {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def measure(uri: str, spec: Path, env: dict[str, str]) -> dict[str, float]:
    """The commands' wall times on one store (its index removed first), and one in-process scan."""
    from ddray.store import Store
    from ddray.store.fs import delete_dir

    store = Store(uri)
    delete_dir(store.loc, store.path("index"))
    out = {}
    for name, args in (("cold_status", ["status", uri]), ("compact", ["store", "compact", uri]),
                       ("status", ["status", uri]), ("report", ["report", uri, "--format", "csv"]),
                       ("noop_run", ["run", str(spec), "--store", uri, "--no-progress"]),
                       ("startup", ["--version"])):  # the last: what any fresh process costs (interpreter, imports)
        out[name] = _ddray(args, env)
        print(f"    {name} {out[name]:.1f} s", flush=True)
    return {**out, **in_process(uri)}


def in_process(uri: str) -> dict[str, float]:
    """The same reads without a process' start-up: one scan, `status` and `report` as functions."""
    import ddray.report  # noqa: F401  (imported before the clock starts: imports are start-up)
    from ddray.report_cli import report_store
    from ddray.status import store_status
    from ddray.store import Store

    out = {}
    t0 = time.perf_counter()
    scan = Store(uri).scan()
    out["scan"] = time.perf_counter() - t0
    assert scan.indexed == scan.table.num_rows and not scan.bad
    t0 = time.perf_counter()
    store_status(uri)
    out["status_fn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report_store(uri, fmt="csv")
    out["report_fn"] = time.perf_counter() - t0
    return out


def _moto() -> tuple[object, int]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="bench")
    return server, port


def upload(local: Path, uri: str) -> float:
    """The local store's files, byte for byte, under `uri` (a bulk copy, threaded)."""
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(uri)
    t0 = time.perf_counter()
    pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs,
                    use_threads=True)
    return time.perf_counter() - t0


def run_size(n: int, tmp: Path, env: dict[str, str], port: int | None) -> dict[str, float]:
    root = tmp / f"n{n}"
    root.mkdir()
    spec, plan_s, write_s = write_store(n, root)
    figures = {"plan_s": plan_s, "write_s": write_s}
    print(f"  store_scale: {n:,} rows: planned in {plan_s:.1f} s, written in {write_s:.1f} s", flush=True)
    for k, v in measure(str(root / "store"), spec, env).items():
        figures[f"local_{k}"] = v
    print(f"  store_scale: {n:,} rows, local: " + ", ".join(f"{k[6:]} {v:.1f} s" for k, v in figures.items()
                                                            if k.startswith("local_")), flush=True)
    if port is not None:
        uri = f"s3://bench/n{n}?endpoint_override=http://127.0.0.1:{port}&scheme=http"
        shutil.rmtree(root / "store" / "index", ignore_errors=True)
        figures["s3_upload_s"] = upload(root / "store", uri)
        for k, v in measure(uri, spec, env).items():
            figures[f"s3_{k}"] = v
        print(f"  store_scale: {n:,} rows, S3: " + ", ".join(f"{k[3:]} {v:.1f} s" for k, v in figures.items()
                                                           if k.startswith("s3_")), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return figures


def driver_memory(n: int = 2_000) -> dict[str, float]:
    """Python heap per trial held by a `ddray run` driver, from tracemalloc over a fake-trial loop.

    ddray's part is what `run_plan` builds per planned trial (the plan's trial, the config Tune is
    handed, the ready queue's entry); Tune's part is what its controller keeps per trial until the
    run ends (a `Trial` with its metric statistics and cached JSON state), driven here through Tune's
    own `Trial.update_last_result` with results shaped like the trainable's (an epoch report a
    second, then the stored one). No Ray is started.
    """
    import tracemalloc

    from ray.tune.experiment import Trial as TuneTrial

    from ddray.plan import make_plan
    from ddray.run.runner import expected_work
    from ddray.run.schedule import ReadyQueue
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    spec = resolve_methods(parse_spec(_spec(n, "unused")))
    env = {"store": "/tmp/store", "roots": {"digits": None}, "checkpoint_every": 0, "cache_gb": None}
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    trials = make_plan(spec).trials
    configs = {t.key: {**t.to_dict(), "gpu": 0.0} for t in trials}
    queue = ReadyQueue(trials, set(), expected_work)
    ours = tracemalloc.get_traced_memory()[0] - base
    kept = []
    for t in trials:
        config = {"trial": configs[t.key], "env": env, "owner": "driver"}
        tt = TuneTrial("run_trial", config=config, stub=True)
        for epoch in range(3):
            tt.update_last_result({"epoch": epoch, "epochs": 3, "top1": -1.0, "training_iteration": epoch + 1,
                                   "config": config, "pid": 1})
        tt.update_last_result({"stored": 1, "wrote": 1, "top1": 0.5, "pid": 1, "training_iteration": 4, "config": config})
        tt.run_metadata.get_json_state()
        kept.append(tt)
    tune = tracemalloc.get_traced_memory()[0] - base - ours
    tracemalloc.stop()
    del queue, kept
    return {"ddray_kb_per_trial": ours / len(trials) / 1024, "tune_kb_per_trial": tune / len(trials) / 1024}


def verdict(n: int, figures: dict[str, float]) -> list[str]:
    """One line per target that applies to this size: the slowest command against it."""
    lines = []
    for where in ("local", "s3"):
        target = TARGETS.get((n, where))
        got = [figures[f"{where}_{c}"] for c in COMMANDS if f"{where}_{c}" in figures]
        if target is not None and got:
            lines.append(f"{n:,} rows {where}: slowest command {max(got):.1f} s, target < {target:.0f} s: "
                         f"{'ok' if max(got) < target else 'MISSED'}")
    return lines


def main(sizes: tuple[int, ...] = (1_000, 10_000), s3: bool = True) -> dict[str, float]:
    """Write, index and read stores of `sizes` rows; returns the figures it prints."""
    load = busy_cores()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if s3 and importlib.util.find_spec("moto") is None:
        print("store_scale: moto is not installed (pip install -e '.[test]'): local folder only")
        s3 = False
    server, port = _moto() if s3 else (None, None)
    tmp = Path(tempfile.mkdtemp(prefix="ddray-bench-store-"))
    out: dict[str, float] = {"busy_cores_before": load, **driver_memory()}
    print(f"  store_scale: driver heap per trial: ddray {out['ddray_kb_per_trial']:.1f} KB, "
          f"Tune {out['tune_kb_per_trial']:.1f} KB", flush=True)
    lines = []
    try:
        for n in sizes:
            figures = run_size(n, tmp, env, port)
            out.update({f"{n}_{k}": v for k, v in figures.items()})
            lines += verdict(n, figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if server is not None:
            server.stop()
    print("store_scale: " + "; ".join(lines) + f" ({load:.1f} of {os.cpu_count()} cores busy before)")
    if warning := busy_warning(load, "store_scale"):
        print(warning)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 10_000], help="store sizes to measure")
    parser.add_argument("--no-s3", action="store_true", help="local folder only")
    args = parser.parse_args()
    main(tuple(args.rows), not args.no_s3)
