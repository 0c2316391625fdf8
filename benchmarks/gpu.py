"""Trials/hour on one GPU at fractions 1, 1/2, 1/4, 1/8: what fractional packing buys.

Why it needs no Ray: `gpu: f` is bookkeeping in Ray — it lets 1/f trials share a GPU, each in its
own worker process. Running N = 1/f engine processes side by side on one GPU therefore measures
exactly what the fraction buys, and runs on GPU boxes where Ray is not installed.

Each worker builds CIFAR-sized data in memory (32×32 RGB, 10 classes; it only needs shapes), warms
up (CUDA context, cuDNN autotune, first compile), waits until every worker is ready, then runs
`--trials` trials of the RD³ protocol (soft labels from a ConvNet/ResNet teacher, KL, RRC + flip +
CutMix, `--epochs` epochs at IPC `--ipc`) and reports start/end times and its peak device memory.
Throughput is trials / (last end − first start) · 3600; the fraction with the most trials/hour is
the arch's best default (`ddray.spec.default_gpu_fraction`).

Run: `python -m benchmarks.gpu [--archs convnet-d3 resnet18] [--fractions 1 0.5 0.25 0.125]
[--epochs 50] [--ipc 10] [--trials 2] [--out DIR]`. `--device cpu` checks the harness on a
machine without CUDA (the figures then mean nothing).

`--imagenet` measures instead what one trial of `specs/imagenet1k-rd3.yaml` costs: an RD³ syn
trial at ImageNet-1k's shape (1,000 classes, IPC 10 and 50, 224 px, a `tv:resnet18` student with a
`tv:resnet18` teacher relabelling every augmented batch, bf16 autocast, channels_last) through
`ddray.engine.train_student`, on random pixels for `--steps` steps (whole epochs), with the
teacher as ddray loads it and, beside it, in channels_last. It reports training images/s,
evaluation images/s, peak device memory and the projected hours of a 300-epoch trial with its one
pass over the 50,000 test images.

The syn-trial check (part of the default run) measures one `syn` trial the way the data plane
runs it on a GPU: a normalized distilled set trained on the device, and a real test split kept as
uint8 — moved to the device 4× smaller than float32 and normalized there batch by batch
(`PixelSpec`). It reports training and evaluation images/s and the peak device memory of each,
beside the device bytes of the test split as uint8 and as the float32 copy it used to be.
`--syn-only` runs just that (`--syn-size 224 --syn-classes 100 --n-test 10000` for ImageNet-sized data).

`--all --out DIR` runs every GPU check (packing, syn trial, ImageNet trial): one command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FRACTIONS = (1.0, 0.5, 0.25, 0.125)
ARCHS = ("convnet-d3", "resnet18")
SPECS = Path(__file__).resolve().parent.parent / "specs"
IMAGENET_TEST_IMAGES = 50_000  # ImageNet-1k's val split, which a trial evaluates once at its end


def imagenet_recipe() -> tuple[str, int, int]:
    """(arch, epochs, batch size) of a trial of specs/imagenet1k-rd3.yaml, read from the spec, so
    the projection follows the spec when it changes."""
    from ddray.yaml_strict import read_yaml_file

    _, spec = read_yaml_file(SPECS / "imagenet1k-rd3.yaml")
    return spec["archs"][0], spec["overrides"]["epochs"], spec["overrides"]["batch_size"]


def _data(ipc: int, n_test: int, seed: int):
    import torch

    from ddray.data import build_real_data

    g = torch.Generator().manual_seed(seed)
    classes = [str(c) for c in range(10)]
    train_y = torch.arange(10).repeat_interleave(max(ipc, 50))
    data = build_real_data("made-up-cifar", torch.randn(len(train_y), 3, 32, 32, generator=g), train_y,
                           torch.randn(n_test, 3, 32, 32, generator=g), torch.randint(0, 10, (n_test,), generator=g),
                           classes, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), normalized=True)
    x = torch.randn(10 * ipc, 3, 32, 32, generator=g)
    y = torch.arange(10).repeat_interleave(ipc)
    return data, x, y


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device) -> float:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def syn_trial(args: argparse.Namespace) -> dict[str, float]:
    """One syn trial with a uint8 test split normalized on the device: images/s and peak device memory."""
    import torch

    from ddray.data import build_real_data
    from ddray.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
    from ddray.engine import evaluate, train_student
    from ddray.engine.train import evaluation_set
    from ddray.protocols import resolve_protocol

    device = torch.device(args.device)
    k, s, n = args.syn_classes, args.syn_size, args.ipc * args.syn_classes
    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (args.n_test, 3, s, s), dtype=torch.uint8, generator=g)
    test_y = torch.randint(0, k, (args.n_test,), generator=g)
    data = build_real_data("uint8-test", test[:k], torch.arange(k), test, test_y, [str(c) for c in range(k)],
                           IMAGENET_MEAN, IMAGENET_STD)
    x, y = torch.randn(n, 3, s, s, generator=g), torch.arange(k).repeat_interleave(args.ipc)
    arch = args.archs[0]

    def run(epochs: int):
        protocol = resolve_protocol("ddranking-hard", {"epochs": epochs, "compile": args.compile})
        return train_student(x.to(device), y.to(device), data, arch, protocol, labels="hard", aug=True, seed=1,
                             device=device)

    run(1)  # warm-up: CUDA context, cuDNN autotune
    _reset_peak(device)
    _sync(device)
    t0 = time.perf_counter()
    result = run(args.epochs)  # trains, then evaluates once on the uint8 test split
    _sync(device)
    trial_s = time.perf_counter() - t0
    train_peak = _peak(device)
    _reset_peak(device)
    test_x, test_labels = evaluation_set(data.test, device)
    _sync(device)
    t0 = time.perf_counter()
    evaluate(result.model, test_x, test_labels, device, pixels=data.pixels)
    _sync(device)
    eval_s = time.perf_counter() - t0
    return {"syn_trial_s": trial_s, "syn_train_img_s": args.epochs * n / max(trial_s - eval_s, 1e-9),
            "syn_eval_img_s": args.n_test / eval_s, "syn_trial_peak_mib": train_peak, "syn_eval_peak_mib": _peak(device),
            "syn_test_uint8_mib": test.numel() / 2**20, "syn_test_float32_mib": test.numel() * 4 / 2**20}


def worker(args: argparse.Namespace) -> None:
    """One packed trial slot: warm up, wait for the others, run `args.trials` trials, print JSON."""
    import torch

    from ddray.engine import train_student
    from ddray.models import build_model
    from ddray.protocols import resolve_protocol

    device = torch.device(args.device)
    torch.set_num_threads(1)
    data, x, y = _data(args.ipc, args.n_test, seed=args.slot)
    torch.manual_seed(1000 + args.slot)
    teacher = build_model(args.arch, 3, 10, 32).to(device).eval()
    protocol = resolve_protocol("rd3", {"epochs": args.epochs, "compile": args.compile})
    warm = resolve_protocol("rd3", {"epochs": 1, "compile": args.compile})

    def trial(p, seed: int) -> float:
        t0 = time.perf_counter()
        train_student(x.to(device), y.to(device), data, args.arch, p, labels="soft", aug=True, seed=seed,
                      teachers=[teacher], device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    trial(warm, 0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    Path(args.ready_dir, f"{args.slot}").touch()
    while len(os.listdir(args.ready_dir)) < args.slots:  # start together: the GPU is shared from t0
        time.sleep(0.05)
    start = time.time()
    times = [trial(protocol, seed) for seed in range(1, args.trials + 1)]
    end = time.time()
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    reserved = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else 0
    print(json.dumps({"start": start, "end": end, "times": times, "peak_alloc": peak, "peak_reserved": reserved}))


def _cell(arch: str, fraction: float, args: argparse.Namespace) -> dict[str, float]:
    """Run 1/fraction worker processes at once on one device; trials/hour and peak memory per trial."""
    slots = max(1, round(1 / fraction))
    with tempfile.TemporaryDirectory() as ready:
        cmd = [sys.executable, "-m", "benchmarks.gpu", "--worker", "--arch", arch, "--ipc", str(args.ipc),
               "--epochs", str(args.epochs), "--trials", str(args.trials), "--n-test", str(args.n_test),
               "--device", args.device, "--slots", str(slots), "--ready-dir", ready]
        if args.compile:
            cmd.append("--compile")
        procs = [subprocess.Popen([*cmd, "--slot", str(i)], stdout=subprocess.PIPE, text=True) for i in range(slots)]
        outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"{arch} at gpu {fraction}: a worker failed (exit codes {[p.returncode for p in procs]})")
    res = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    wall = max(r["end"] for r in res) - min(r["start"] for r in res)
    n = sum(len(r["times"]) for r in res)
    return {"arch": arch, "fraction": fraction, "slots": slots, "trials_per_hour": n / wall * 3600,
            "trial_s": statistics.median(t for r in res for t in r["times"]),
            "peak_alloc_mib": max(r["peak_alloc"] for r in res) / 2**20,
            "peak_reserved_mib": max(r["peak_reserved"] for r in res) / 2**20}


def run(args: argparse.Namespace) -> list[dict[str, float]]:
    cells = []
    for arch in args.archs:
        for f in args.fractions:
            c = _cell(arch, f, args)
            print(f"gpu: {arch} at {f:g} ({c['slots']} per GPU): {c['trials_per_hour']:.0f} trials/h, "
                  f"median trial {c['trial_s']:.1f} s, peak {c['peak_alloc_mib']:.0f} MiB allocated "
                  f"({c['peak_reserved_mib']:.0f} reserved)", flush=True)
            cells.append(c)
    return cells


def best_fractions(cells: list[dict[str, float]]) -> dict[str, float]:
    """Per arch, the fraction with the most trials/hour (ties go to the larger fraction: less risk)."""
    best: dict[str, dict[str, float]] = {}
    for c in cells:
        b = best.get(c["arch"])
        if b is None or c["trials_per_hour"] > b["trials_per_hour"] * 1.02:
            best[c["arch"]] = c
    return {a: c["fraction"] for a, c in best.items()}


def markdown(cells: list[dict[str, float]], args: argparse.Namespace, device_name: str) -> str:
    lines = [f"GPU packing on {device_name}: RD³ protocol (soft labels, KL, RRC+flip+CutMix), IPC {args.ipc}, "
             f"{args.epochs} epochs, {args.trials} trials per slot, test split {args.n_test} images"
             f"{', compiled' if args.compile else ''}.", "",
             "| arch | gpu | trials per GPU | trials/hour | vs gpu 1.0 | median trial s | peak alloc MiB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    base = {c["arch"]: c["trials_per_hour"] for c in cells if c["fraction"] == max(args.fractions)}
    for c in cells:
        lines.append(f"| {c['arch']} | {c['fraction']:g} | {c['slots']} | {c['trials_per_hour']:.0f} | "
                     f"{c['trials_per_hour'] / base[c['arch']]:.2f}× | {c['trial_s']:.1f} | {c['peak_alloc_mib']:.0f} |")
    best = best_fractions(cells)
    lines += ["", "Best default fraction: " + ", ".join(f"{a} {f:g}" for a, f in best.items()), ""]
    return "\n".join(lines)


def imagenet_trial(ipc: int, *, classes: int, size: int, batch: int, steps: int, n_eval: int, device: str,
                   teacher_channels_last: bool = False, seed: int = 0) -> dict[str, float]:
    """One RD³ syn trial of ImageNet's shape through the real engine, timed; its figures.

    The distilled set (classes × ipc random images) lives on the device, as in a trial; the test
    split the trial evaluates at its end is a few images (evaluation is timed apart, on `n_eval`
    CPU-resident images moved in chunks, as the real test split is). A first one-epoch trial warms
    up (CUDA context, cuDNN autotuning) and is not timed.
    """
    import math

    import torch

    from ddray.data import build_real_data
    from ddray.engine import evaluate, train_student
    from ddray.models import build_model
    from ddray.protocols import resolve_protocol

    dev = torch.device(device)
    torch.manual_seed(seed)
    n = classes * ipc
    x = torch.randn(n, 3, size, size, device=dev)
    y = torch.arange(classes, device=dev).repeat_interleave(ipc)
    test_x, test_y = torch.randn(2 * batch, 3, size, size), torch.arange(2 * batch) % classes
    data = build_real_data("imagenet-shaped", test_x, test_y, test_x, test_y, [f"c{i}" for i in range(classes)],
                           (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), normalized=True)
    arch, _, _ = imagenet_recipe()
    teacher = build_model(arch, 3, classes, size).to(dev).eval()
    if teacher_channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    per_epoch = math.ceil(n / min(batch, n))
    epochs = max(1, math.ceil(steps / per_epoch))

    def trial(epochs: int) -> tuple[float, torch.nn.Module]:
        p = resolve_protocol("rd3", {"epochs": epochs, "batch_size": batch, "channels_last": True, "amp": True})
        _sync(dev)
        t0 = time.perf_counter()
        res = train_student(x, y, data, arch, p, labels="soft", aug=True, seed=seed + 1,
                            teachers=[teacher], device=dev)
        _sync(dev)
        assert res.model is not None and res.status == "ok", res.status
        return time.perf_counter() - t0, res.model

    trial(1)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    seconds, model = trial(epochs)
    eval_x, eval_y = torch.randn(n_eval, 3, size, size), torch.arange(n_eval) % classes
    _sync(dev)
    t0 = time.perf_counter()
    evaluate(model, eval_x, eval_y, dev, amp=True, channels_last=True)
    _sync(dev)
    eval_ips = n_eval / (time.perf_counter() - t0)
    train_ips = epochs * n / seconds
    hours = (imagenet_recipe()[1] * n / train_ips + IMAGENET_TEST_IMAGES / eval_ips) / 3600
    cuda = dev.type == "cuda"
    return {"ipc": ipc, "teacher_channels_last": teacher_channels_last, "steps": epochs * per_epoch,
            "step_ms": 1000 * seconds / (epochs * per_epoch), "train_images_per_s": train_ips,
            "eval_images_per_s": eval_ips, "projected_trial_hours": hours,
            "peak_alloc_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else 0.0,
            "peak_reserved_gib": torch.cuda.max_memory_reserved(dev) / 2**30 if cuda else 0.0}


def imagenet_markdown(cells: list[dict[str, float]], args: argparse.Namespace, device_name: str) -> str:
    arch, epochs, _ = imagenet_recipe()
    lines = [f"RD³ ImageNet-1k trial on {device_name}: {args.classes} classes, {args.size} px, {arch} "
             f"student and teacher (soft labels on every augmented batch, KL, RRC+flip+CutMix), batch {args.batch}, "
             f"bf16 autocast, channels_last; random pixels. Projected: {epochs} epochs plus one pass over "
             f"{IMAGENET_TEST_IMAGES:,} test images.", "",
             "| IPC | teacher layout | steps timed | ms/step | train img/s | eval img/s | peak alloc GiB | "
             "projected h per trial |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cells:
        layout = "channels_last" if c["teacher_channels_last"] else "as loaded (NCHW)"
        lines.append(f"| {c['ipc']} | {layout} | {c['steps']} | {c['step_ms']:.1f} | {c['train_images_per_s']:,.0f} | "
                     f"{c['eval_images_per_s']:,.0f} | {c['peak_alloc_gib']:.1f} | {c['projected_trial_hours']:.2f} |")
    return "\n".join([*lines, ""])


def run_imagenet(args: argparse.Namespace) -> list[dict[str, float]]:
    cells = []
    for ipc in args.ipcs:
        for teacher_cl in (False, True):
            c = imagenet_trial(ipc, classes=args.classes, size=args.size, batch=args.batch, steps=args.steps,
                               n_eval=args.n_eval, device=args.device, teacher_channels_last=teacher_cl)
            print(f"gpu: imagenet IPC {ipc}{' (teacher channels_last)' if teacher_cl else ''}: "
                  f"{c['train_images_per_s']:,.0f} train img/s, {c['eval_images_per_s']:,.0f} eval img/s, "
                  f"peak {c['peak_alloc_gib']:.1f} GiB, {c['projected_trial_hours']:.2f} h per "
                  f"{imagenet_recipe()[1]}-epoch trial", flush=True)
            cells.append(c)
    return cells


def _write(out_dir: str | None, stem: str, text: str, cells: list[dict[str, float]]) -> None:
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.md").write_text(text)
        (out / f"{stem}.json").write_text(json.dumps(cells, indent=1))
    print(text)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Runs only where CUDA is present (or with --device cpu); returns trials/hour per cell
    (packing) and images/s and projected hours per ImageNet cell (`--imagenet`)."""
    args = parse(argv or [])
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu: skipped (no CUDA device here)")
        return {}
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU (harness check only)"
    figures: dict[str, float] = {}
    if args.imagenet or args.all:
        found = run_imagenet(args)
        _write(args.out, "imagenet", imagenet_markdown(found, args, name), found)
        for c in found:
            tag = f"imagenet ipc{c['ipc']}{' teacher-cl' if c['teacher_channels_last'] else ''}"
            figures[f"{tag} train img/s"] = c["train_images_per_s"]
            figures[f"{tag} projected h/trial"] = c["projected_trial_hours"]
    if args.syn_only or not args.imagenet or args.all:
        syn = syn_trial(args)
        print(f"gpu: one syn trial on {name} ({args.archs[0]}, {args.syn_classes} classes at {args.syn_size} px, "
              f"IPC {args.ipc}, {args.n_test} uint8 test images): {syn['syn_train_img_s']:.0f} train img/s, "
              f"{syn['syn_eval_img_s']:.0f} eval img/s, peak {syn['syn_trial_peak_mib']:.0f} MiB "
              f"(test split {syn['syn_test_uint8_mib']:.0f} MiB as uint8, {syn['syn_test_float32_mib']:.0f} as float32)",
              flush=True)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "syn.json").write_text(json.dumps(syn, indent=1))
        figures.update(syn)
        if args.syn_only:
            return figures
    if not args.imagenet or args.all:
        cells = run(args)
        _write(args.out, "gpu", markdown(cells, args, name), cells)
        figures.update({f"{c['arch']}@{c['fraction']:g} trials/h": c["trials_per_hour"] for c in cells})
    return figures


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--fractions", nargs="+", type=float, default=list(FRACTIONS))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--trials", type=int, default=2, help="trials per slot after warm-up")
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile", action="store_true", help="torch.compile the student step (protocol knob)")
    ap.add_argument("--out", default=None, help="folder for gpu.md/gpu.json (packing), syn.json and imagenet.md/imagenet.json")
    ap.add_argument("--imagenet", action="store_true", help="time one RD³ ImageNet-1k trial instead of packing")
    ap.add_argument("--all", action="store_true", help="every GPU check: packing, the syn trial, ImageNet")
    ap.add_argument("--ipcs", nargs="+", type=int, default=[10, 50], help="--imagenet: IPCs to time")
    ap.add_argument("--classes", type=int, default=1000, help="--imagenet: classes")
    ap.add_argument("--size", type=int, default=224, help="--imagenet: image side in pixels")
    ap.add_argument("--batch", type=int, default=imagenet_recipe()[2],
                    help="--imagenet: batch size (default: specs/imagenet1k-rd3.yaml's)")
    ap.add_argument("--steps", type=int, default=300, help="--imagenet: training steps timed (rounded up to whole epochs)")
    ap.add_argument("--n-eval", type=int, default=5000, help="--imagenet: test images timed for evaluation")
    ap.add_argument("--syn-only", action="store_true", help="only the one syn trial with a uint8 test split")
    ap.add_argument("--syn-size", type=int, default=32, help="side of the syn trial's images")
    ap.add_argument("--syn-classes", type=int, default=10, help="classes of the syn trial's data")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arch", help=argparse.SUPPRESS)
    ap.add_argument("--slot", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--slots", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--ready-dir", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    from benchmarks import run_module

    run_module(parse, worker, main)
