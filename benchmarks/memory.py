"""Memory and decode time of real trials over JPEG folders: what a trial holds, one copy per node.

Run: `python -m benchmarks.memory [--work DIR]`. It generates two JPEG folders (kept in `--work`
and reused from there when given, else in a temporary folder):
- ImageNet-shaped: 100 wnid classes × 200 train + 10 val JPEGs of varied sizes around 224 px,
  loaded with `imagefolder` at `image_size: 224`; hard-linked views with 20 and 60 train images
  per class share the same files;
- Tiny-ImageNet-shaped: 200 classes × 500 train + 50 val JPEGs at 64×64 in Tiny-ImageNet's own
  layout (`val/images` + `val_annotations.txt`), loaded with `tinyimagenet`.
Neither loader has normalization constants: the first trial on a node computes them in one
streamed pass over the train split (the cold decode time includes it).

Every trial is a real `ddray.run.execute` eval trial (IPC 1, ConvNet-D3 at width 16, DD-Ranking's
hard-label protocol for 2 epochs at batch 10, no augmentation) in its own process, with the node
cache in a fresh folder per scenario. A syn trial evaluates a distilled set given as files; an
rdm trial draws its IPC×K real images. Memory is read from /proc at the end of a trial, while
every trial started with it is still alive (so shared pages are shared when measured):
- peak RSS (VmHWM) of a trial; `model working set` = RSS after a warm-up of the same model on
  in-memory data of the same shapes, minus RSS after the imports;
- data held = RSS of the node-cache files the trial maps (the pixels it read, shared through the
  page cache) + the anonymous memory it still references beyond that of a control trial — the
  same trial whose test split is one evaluation batch (same model, batch shapes, distilled set or
  rdm images, statistics), after gc and malloc_trim (a kept copy of the test split, such as the
  float32 one every trial used to hold, shows there); `read` = the uint8 bytes of the test images
  the control does not read, and `private` the anonymous part;
- two trials at once on the node (started together on a warm cache): node data = the sum over
  both of the PSS of their node-cache mappings (shared pages count half in each) and of their
  private data, against one trial's data held;
- decode s = seconds spent decoding pixels on any thread of the trial, cold (empty node cache)
  and warm (after a first trial; for rdm after `ddray cache warm`); waited s = the part the
  trial waited for (`DATA_CLOCK`, what a time-to-synthesize leaves out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.jpeg_trees import Jpeg, imagenet_tree, write_jpegs

REPO = Path(__file__).resolve().parent.parent
ARCH = "convnet-w16"
TARGET_SAME, TARGET_HELD, TARGET_NODE, TARGET_WARM = 0.05, 1.5, 1.3, 0.10
NOTES: str | None = None


# ------------------------------------------------------------------------------------------ data
def imagenet_shaped(base: Path, classes: int = 100, train: int = 200, val: int = 10,
                    views: tuple[int, ...] = (20, 60)) -> dict[int, Path]:
    """The 224-px folder with `train` images per class, and hard-linked views with fewer (`views`)."""
    full = base / f"in224-{classes}x{train}"
    if not (full / ".done").exists():
        shutil.rmtree(full, ignore_errors=True)
        imagenet_tree(full, [f"n{c:08d}" for c in range(classes)], train, val, widths=(200, 320), heights=(180, 300),
                      content="smooth", quality=85, processes=2)
        (full / ".done").touch()
    roots = {train: full}
    for n in views:
        view = base / f"in224-{classes}x{n}"
        if not (view / ".done").exists():
            shutil.rmtree(view, ignore_errors=True)
            for folder in (full / "train").iterdir():
                (view / "train" / folder.name).mkdir(parents=True)
                for f in sorted(folder.iterdir())[:n]:
                    os.link(f, view / "train" / folder.name / f.name)
            shutil.copytree(full / "val", view / "val", copy_function=os.link)
            (view / ".done").touch()
        roots[n] = view
    return roots


def tiny_shaped(base: Path, classes: int = 200, train: int = 500, val: int = 50) -> Path:
    """Tiny-ImageNet's layout and sizes: train/<wnid>/images/*.JPEG, val/images + val_annotations.txt."""
    root = base / f"tiny-{classes}x{train}"
    if (root / ".done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    images, lines = [], []
    for c in range(classes):
        wnid = f"n{c:08d}"
        images += [Jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64), c, c * 100_003 + i)
                   for i in range(train)]
        names = [f"val_{c * val + i}.JPEG" for i in range(val)]
        images += [Jpeg(root / "val" / "images" / n, (64, 64), c, c * 100_003 + train + i) for i, n in enumerate(names)]
        lines += [f"{n}\t{wnid}\t0\t0\t64\t64" for n in names]
    write_jpegs(images, "smooth", quality=85, processes=2)
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / ".done").touch()
    return root


def _spec(loader: str, root: Path, image_size: int | None, sets: Path) -> dict[str, Any]:
    options = {"image_size": image_size} if image_size else {}
    return {"name": "memory", "datasets": {"bench": {"loader": loader, "root": str(root), "options": options}},
            "methods": {"set": {"files": str(sets / "{dataset}" / "ipc{ipc}")}}, "ipc": [1], "archs": [ARCH],
            "seeds": [0], "protocol": "ddranking-hard", "overrides": {"epochs": 2, "batch_size": 10},
            "resources": {"default": {"cpu": 1}}}


# ---------------------------------------------------------------------------------------- worker
def _kb(field: str, path: str = "/proc/self/status") -> int:
    with open(path) as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) * 1024


def _cache_maps(cache: str) -> tuple[int, int]:
    """(RSS, PSS) bytes of this process's mappings of files in the node cache."""
    rss = pss = 0
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                inside = len(head) >= 6 and head[5].startswith(cache)
            elif inside and head[0] == "Rss:":
                rss += int(head[1]) * 1024
            elif inside and head[0] == "Pss:":
                pss += int(head[1]) * 1024
    return rss, pss


def worker(a: argparse.Namespace) -> None:
    """One trial in this process: warm-up, wait for the others, run, print the figures as JSON."""
    os.environ["DDRAY_CACHE_DIR"] = a.cache
    import gc

    import torch

    torch.set_num_threads(1)
    import ddray.run.execute as ex
    from ddray.data import build_real_data, dataset_meta
    from ddray.data.split import DATA_CLOCK
    from ddray.engine import train_student
    from ddray.engine.device import free_device_memory, keep_freed_memory
    from ddray.engine.evaluate import eval_batch
    from ddray.plan import make_plan
    from ddray.run.worker_env import WorkerEnv, load_data
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    keep_freed_memory()
    rss_imports = _kb("VmRSS")
    spec = json.loads(a.spec)
    plan = make_plan(resolve_methods(parse_spec(spec)))
    trial = next(t for t in plan.stage("eval") if t.config.arm == a.arm and not t.config.aug)
    ds = spec["datasets"]["bench"]
    meta = dataset_meta(ds["loader"], ds["root"], **ds["options"])
    k, shape = meta.num_classes, meta.image_shape
    batch = eval_batch(*shape[1:])  # the warm-up and the control evaluate one batch of the trial's size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (k, *shape), dtype=torch.uint8, generator=g)
    test = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=g)
    warm = build_real_data("warm-up", x, torch.arange(k), test, torch.arange(batch) % k, meta.classes, (0.5,) * 3,
                           (0.25,) * 3)
    train_set = x if a.arm == "rdm" else warm.pixels(x)
    train_student(train_set, torch.arange(k), warm, ARCH, trial.config.recipe, labels="hard", aug=False, seed=0,
                  device=torch.device("cpu"))
    del warm, train_set, x, test
    gc.collect()
    model_ws = _kb("VmRSS") - rss_imports
    if a.control:  # the same trial reading one evaluation batch of the test split
        def control(config, env):
            data = load_data(config, env)
            keep = torch.arange(min(batch, len(data.test)))
            return type(data)(data.name, data.train, data.test.subset(keep), data.classes, data.pixels, data.scale)

        ex.load_data = control
    decoding = _decode_work()
    _barrier(Path(a.sync, "ready"), a.slots)
    d0, t0 = DATA_CLOCK.seconds(), time.perf_counter()
    row = ex.execute(trial, WorkerEnv(store=a.store, roots={"bench": ds["root"]}), torch.device("cpu"))
    wall, waited = time.perf_counter() - t0, DATA_CLOCK.seconds() - d0
    data = ex.load_data(trial.config, WorkerEnv(store=a.store, roots={"bench": ds["root"]}))  # this process's copy
    _barrier(Path(a.sync, "done"), a.slots)  # every trial of the node has finished and still maps what it read
    free_device_memory()  # gc and malloc_trim: what stays is what is still referenced
    rss, pss = _cache_maps(a.cache)
    anon = _kb("Anonymous", "/proc/self/smaps_rollup")
    _barrier(Path(a.sync, "measured"), a.slots)
    print(json.dumps({"peak_rss": _kb("VmHWM"), "model_ws": model_ws, "cache_rss": rss, "cache_pss": pss,
                      "anon": anon, "decode_s": decoding[0], "waited_s": waited, "wall_s": wall,
                      "test_bytes": data.test.nbytes, "top1": row.top1}))


def _barrier(folder: Path, slots: int) -> None:
    """Wait until `slots` processes have reached this point (a file each in `folder`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    while len(os.listdir(folder)) < slots:
        time.sleep(0.01)


def _decode_work() -> list[float]:
    """Seconds spent decoding pixels in this process, on any thread: [total], updated as it goes.

    The trial's own `DATA_CLOCK` counts only the time it waited for pixels; a streamed pass hides
    part of the decoding behind the caller's work, so the benchmark counts the decode work itself.
    """
    import ddray.data.sources as sources

    total = [0.0]
    lock = __import__("threading").Lock()

    def timed(fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    total[0] += time.perf_counter() - t0
        return wrapper

    sources.FileSource.fill = timed(sources.FileSource.fill)
    sources.DecodedSource.decode = timed(sources.DecodedSource.decode)
    return total


# ---------------------------------------------------------------------------------------- driver
class Runner:
    def __init__(self, work: Path):
        self.work = work
        self.env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def sets(self, meta_key: str, num_classes: int, shape: tuple[int, int, int]) -> Path:
        """A normalized float32 distilled set of IPC 1 (random: only its size matters here)."""
        import torch

        sets = self.work / "sets" / meta_key
        folder = sets / "bench" / "ipc1"
        if not (folder / "images.pt").exists():
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(torch.randn((num_classes, *shape), generator=torch.Generator().manual_seed(0)), folder / "images.pt")
        return sets

    def trials(self, spec: dict[str, Any], arm: str, cache: Path, n: int = 1, control: bool = False) -> list[dict[str, Any]]:
        """`n` trial processes started together on one node cache (and measured together)."""
        sync = Path(tempfile.mkdtemp(dir=self.work))
        cmd = [sys.executable, "-m", "benchmarks.memory", "--worker", "--spec", json.dumps(spec), "--arm", arm,
               "--cache", str(cache), "--store", str(self.work / "store"), "--sync", str(sync), "--slots", str(n)]
        if control:
            cmd.append("--control")
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=self.env, cwd=REPO) for _ in range(n)]
        outs = [p.communicate()[0] for p in procs]
        shutil.rmtree(sync, ignore_errors=True)
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a {arm} trial failed (exit codes {[p.returncode for p in procs]})")
        return [json.loads(o.strip().splitlines()[-1]) for o in outs]

    def warm_cache(self, spec: dict[str, Any], cache: Path) -> None:
        path = self.work / "warm.yaml"
        import yaml

        path.write_text(yaml.safe_dump(spec))
        subprocess.run([sys.executable, "-m", "ddray.cli", "cache", "warm", str(path)], check=True, cwd=REPO,
                       env={**self.env, "DDRAY_CACHE_DIR": str(cache)}, stdout=subprocess.DEVNULL)


MB = 2**20


def _dataset(run: Runner, tag: str, spec: dict[str, Any], cache_root: Path) -> dict[str, float]:
    """Every figure of one dataset: cold/warm syn, controls, rdm, two at once, rdm after `cache warm`."""
    fig: dict[str, float] = {}
    cold, warm_node = cache_root / f"{tag}-a", cache_root / f"{tag}-b"
    syn_cold = run.trials(spec, "syn", cold)[0]
    syn = run.trials(spec, "syn", cold)[0]
    syn_ctl = run.trials(spec, "syn", cold, control=True)[0]
    rdm = run.trials(spec, "rdm", cold)[0]
    rdm_ctl = run.trials(spec, "rdm", cold, control=True)[0]
    rows = {"syn": (syn, syn_ctl), "rdm": (rdm, rdm_ctl)}
    for arm, (t, ctl) in rows.items():
        private = t["anon"] - ctl["anon"]  # anonymous memory that grows with the test images read
        held, read = t["cache_rss"] - ctl["cache_rss"] + private, t["test_bytes"] - ctl["test_bytes"]
        fig |= {f"{tag}_{arm}_peak_rss_mb": t["peak_rss"] / MB, f"{tag}_{arm}_model_working_set_mb": t["model_ws"] / MB,
                f"{tag}_{arm}_data_held_mb": held / MB, f"{tag}_{arm}_data_held_private_mb": private / MB,
                f"{tag}_{arm}_read_uint8_mb": read / MB,
                f"{tag}_{arm}_held_over_read": held / read if read > 0 else float("nan")}
        pair = run.trials(spec, arm, cold, n=2)
        node = sum(p["cache_pss"] + p["anon"] - ctl["anon"] for p in pair)
        one = t["cache_rss"] + private
        fig |= {f"{tag}_{arm}_two_trials_cache_pss_mb": sum(p["cache_pss"] for p in pair) / MB,
                f"{tag}_{arm}_one_trial_cache_rss_mb": t["cache_rss"] / MB,
                f"{tag}_{arm}_two_trials_data_over_one": node / one}
    rdm_cold = run.trials(spec, "rdm", warm_node)[0]
    run.warm_cache(spec, warm_node)
    rdm_warm = run.trials(spec, "rdm", warm_node)[0]
    for arm, c, w in (("syn", syn_cold, syn), ("rdm", rdm_cold, rdm_warm)):
        fig |= {f"{tag}_{arm}_decode_cold_s": c["decode_s"], f"{tag}_{arm}_decode_warm_s": w["decode_s"],
                f"{tag}_{arm}_warm_over_cold": w["decode_s"] / max(c["decode_s"], 1e-9),
                f"{tag}_{arm}_waited_cold_s": c["waited_s"], f"{tag}_{arm}_waited_warm_s": w["waited_s"],
                f"{tag}_{arm}_trial_cold_s": c["wall_s"], f"{tag}_{arm}_trial_warm_s": w["wall_s"]}
    return fig


def _train_size(run: Runner, views: dict[int, Path], sets: Path, cache_root: Path) -> dict[str, float]:
    """syn and rdm peak RSS on two folders that differ only in train size (warm nodes)."""
    fig: dict[str, float] = {}
    peaks: dict[str, list[float]] = {"syn": [], "rdm": []}
    small, large = min(views), max(views)
    for n in (small, large):
        spec, cache = _spec("imagefolder", views[n], 224, sets), cache_root / f"train{n}"
        run.trials(spec, "syn", cache)  # the node's first trial: statistics and the test entry
        for arm in ("syn", "rdm"):
            peak = run.trials(spec, arm, cache)[0]["peak_rss"]
            peaks[arm].append(peak)
            fig[f"in224_train{n}_{arm}_peak_rss_mb"] = peak / MB
    for arm, (a, b) in peaks.items():
        fig[f"in224_{arm}_peak_rss_change_small_to_large_train"] = b / a - 1
    return fig


def _notes(fig: dict[str, float]) -> str:
    checks = []
    for arm in ("syn", "rdm"):
        checks.append((f"{arm} peak RSS change from the small to the large train split",
                       abs(fig[f"in224_{arm}_peak_rss_change_small_to_large_train"]), TARGET_SAME))
    for tag in ("in224", "tiny"):
        for arm in ("syn", "rdm"):
            checks.append((f"{tag} {arm}: data held / uint8 read", fig[f"{tag}_{arm}_held_over_read"], TARGET_HELD))
            checks.append((f"{tag} {arm}: two trials' data / one trial's", fig[f"{tag}_{arm}_two_trials_data_over_one"],
                           TARGET_NODE))
            checks.append((f"{tag} {arm}: warm / cold decode time", fig[f"{tag}_{arm}_warm_over_cold"], TARGET_WARM))
    missed = [f"{name} = {value:.3g} (target {target:g})" for name, value, target in checks if value > target]
    lines = ["Targets met: " + ("all" if not missed else f"{len(checks) - len(missed)} of {len(checks)}") + "."]
    if missed:
        lines.append("Missed: " + "; ".join(missed) + ".")
    lines.append(
        "Cold decode times include the one streamed pass that computes the normalization statistics from "
        "the train pixels (these loaders have no constants); a warm syn trial reads them from the cache. "
        "Data held is the pixels' mapped node-cache pages plus the anonymous memory still referenced that "
        "grows with the test images read (against a control trial reading one evaluation batch), measured "
        "while every trial of the node is alive; peak RSS is dominated by the model working set (training "
        "activations).")
    return " ".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    global NOTES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--work", default=None, help="folder for the generated data (kept and reused when given)")
    ap.add_argument("--classes", type=int, nargs=2, default=(100, 200), help="classes of the 224-px and the 64-px set")
    ap.add_argument("--train", type=int, nargs=4, default=(20, 60, 200, 500),
                    help="train images per class: the 224-px small, main and large folders, the 64-px set")
    ap.add_argument("--val", type=int, nargs=2, default=(10, 50), help="val images per class of each set")
    args, _ = ap.parse_known_args(argv or [])
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ddray-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        (c224, c64), (small, main_n, large, n64), (v224, v64) = args.classes, args.train, args.val
        views = imagenet_shaped(work / "data", c224, large, v224, (small, main_n))
        tiny = tiny_shaped(work / "data", c64, n64, v64)
        print(f"memory: data ready in {time.perf_counter() - t0:.0f} s", flush=True)
        run = Runner(work)
        caches = work / "caches"
        shutil.rmtree(caches, ignore_errors=True)
        in_sets, tiny_sets = run.sets(f"in224-{c224}", c224, (3, 224, 224)), run.sets(f"tiny-{c64}", c64, (3, 64, 64))
        fig = _dataset(run, "in224", _spec("imagefolder", views[main_n], 224, in_sets), caches)
        print(f"memory: in224 done at {time.perf_counter() - t0:.0f} s", flush=True)
        fig |= _dataset(run, "tiny", _spec("tinyimagenet", tiny, None, tiny_sets), caches)
        print(f"memory: tiny done at {time.perf_counter() - t0:.0f} s", flush=True)
        fig |= _train_size(run, {n: views[n] for n in (small, large)}, in_sets, caches)
        NOTES = _notes(fig)
        for k, v in fig.items():
            print(f"memory: {k} = {v:.4g}")
        print(f"memory: {NOTES}")
        return fig
    finally:
        shutil.rmtree(work / "caches", ignore_errors=True)
        shutil.rmtree(work / "store", ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(allow_abbrev=False)  # `--work` must not read as `--worker`
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--spec")
    ap.add_argument("--arm")
    ap.add_argument("--cache")
    ap.add_argument("--store")
    ap.add_argument("--sync")
    ap.add_argument("--slots", type=int, default=1)
    ap.add_argument("--control", action="store_true")
    return ap.parse_known_args(argv)[0]


if __name__ == "__main__":
    from benchmarks import run_module

    run_module(parse, worker, main)
