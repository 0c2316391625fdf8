"""Child of `benchmarks.engine`: times the official ddranking 0.2.0 training loop (runs in its own venv).

It imports nothing from ddray (ddray is not installed in that venv). Protocol: argv[1] is the torch
thread count; then one JSON request per stdin line, one JSON answer per stdout line:

  {"ipc": 10, "labels": "hard"|"soft", "warmup": 1, "epochs": 5, "num_workers": 0, "seed": 0, "profile": false}
  -> {"epoch_s": [...wall s of the timed epochs...], "epoch_cpu_s": [...process CPU s...], "images": <per epoch>,
      "profile": "<table>"|null}
  {"keep_freed_memory": true} -> {"ok": true}: from then on, glibc's malloc tuned as ddray's engine
  tunes it (`ddray.engine.device.keep_freed_memory`), to show what that setting alone gives ddranking.

What runs is what `LabelRobustScoreHard._compute_hard_label_metrics` (mode 'syn') and
`LabelRobustScoreSoft._compute_soft_label_metrics` run for one trial, minus the periodic test
evaluation: ddranking's `ConvNet-3` built by its `build_model`, a `DataLoader` over its
`TensorDataset` with a `RandomSampler`, its `DSA` (single op per batch, siamese off), its
optimizer/scheduler factories and its `train_one_epoch`. Soft: its `KLDivergenceLoss` against a
random-init ConvNet-3 teacher put in eval mode exactly as the metric does (`soft_label_mode='M'`).
The library's per-epoch log line is printed to /dev/null.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

OUT = os.fdopen(os.dup(1), "w", buffering=1)
sys.stdout = open(os.devnull, "w")  # train_one_epoch's MetricLogger prints the first step of every epoch

import torch  # noqa: E402

torch.set_num_threads(int(sys.argv[1]))

from torch.utils.data import DataLoader, RandomSampler  # noqa: E402

from ddranking.aug import DSA  # noqa: E402
from ddranking.loss import KLDivergenceLoss  # noqa: E402
from ddranking.utils import TensorDataset, build_model, get_lr_scheduler, get_optimizer, train_one_epoch  # noqa: E402

NUM_CLASSES = 10
# DD-Ranking's DSA parameters (ParamDiffAug), the same values ddray's DSA uses.
DSA_PARAMS = {"scale": 1.2, "rotate": 15.0, "flip": 0.5, "brightness": 1.0, "saturation": 2.0,
              "contrast": 0.5, "crop": 0.125, "cutout": 0.5}
# The settings of ddray's presets ddranking-hard and ddranking-soft (DSA on for both here).
HARD = {"batch": 256, "optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4, "momentum": 0.9, "scheduler": "step"}
SOFT = {"batch": 50, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "momentum": 0.9, "scheduler": "cosine",
        "temperature": 20.0}


def run(req: dict) -> dict:
    ipc, soft = int(req["ipc"]), req["labels"] == "soft"
    warmup, epochs = int(req["warmup"]), int(req["epochs"])
    total = warmup + epochs
    torch.manual_seed(int(req.get("seed", 0)))
    n = ipc * NUM_CLASSES
    images = torch.randn(n, 3, 32, 32)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(ipc)
    cfg = SOFT if soft else HARD
    model = build_model("ConvNet-3", num_classes=NUM_CLASSES, im_size=(32, 32), device="cpu")
    dataset = TensorDataset(images, labels)
    loader = DataLoader(dataset, batch_size=cfg["batch"], num_workers=int(req.get("num_workers", 0)),
                        sampler=RandomSampler(dataset))
    optimizer = get_optimizer(cfg["optimizer"], model, cfg["lr"], cfg["weight_decay"], cfg["momentum"])
    scheduler = get_lr_scheduler(cfg["scheduler"], optimizer, total, max(1, total // 2))
    teachers = None
    if soft:
        loss_fn = KLDivergenceLoss(temperature=cfg["temperature"], scale_loss=False)
        teacher = build_model("ConvNet-3", num_classes=NUM_CLASSES, im_size=(32, 32), device="cpu")
        teacher.eval()  # what LabelRobustScoreSoft does: eval mode, parameters left as they are
        teachers = [teacher]
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
    aug = DSA(dict(DSA_PARAMS))
    times, cpu = [], []
    prof = None
    for epoch in range(total):
        profiling = bool(req.get("profile")) and epoch == total - 1
        if profiling:
            from torch.profiler import ProfilerActivity, profile
            prof = profile(activities=[ProfilerActivity.CPU])
            prof.__enter__()
        t0, c0 = time.perf_counter(), time.process_time()
        train_one_epoch(epoch=epoch, stu_model=model, loader=loader, loss_fn=loss_fn, optimizer=optimizer,
                        soft_label_mode="M" if soft else "S", aug_func=aug, tea_models=teachers,
                        lr_scheduler=scheduler, device="cpu")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if profiling:
            prof.__exit__(None, None, None)
    table = None
    if prof is not None:
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=int(req.get("rows", 15)))
    return {"epoch_s": times[warmup:], "epoch_cpu_s": cpu[warmup:], "images": n, "profile": table}


def keep_freed_memory() -> dict:
    """The same mallopt calls as ddray's engine makes (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)."""
    libc = ctypes.CDLL(None)
    keep = ctypes.c_int((1 << 31) - 1)
    return {"ok": bool(libc.mallopt(-3, keep)) and bool(libc.mallopt(-1, keep))}


def main() -> None:
    OUT.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        OUT.write(json.dumps(keep_freed_memory() if req.get("keep_freed_memory") else run(req)) + "\n")


if __name__ == "__main__":
    main()
