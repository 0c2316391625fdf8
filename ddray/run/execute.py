"""Execute one planned trial: load what it needs, train or synthesize, return its row.

This is the only place where a plan's config meets the data, models, methods and engine. It
knows nothing of Ray: the Tune trainable and the Ray-free GPU benchmark both call `execute`.
"""

from __future__ import annotations

import io
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

import ddray
from ddray.data import RealData, load_dataset
from ddray.errors import InputError
from ddray.keys import canonical_json
from ddray.plan import comparison_cell
from ddray.protocols import Protocol
from ddray.store import Store, StoreCheckpointer


@dataclass(frozen=True)
class Runtime:
    """What a trial needs besides its config; none of it changes the numbers."""

    store: str
    roots: dict[str, str | None] = field(default_factory=dict)   # dataset name -> root
    checkpoint_every: int = 0
    threads: int = 1
    track: str = "fixed"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()})"


def _checkpoint_every(rt: Runtime, epochs: int) -> int:
    return rt.checkpoint_every or max(5, epochs // 10)


def _data(cfg: dict[str, Any], rt: Runtime) -> RealData:
    ds = cfg["dataset"]
    return load_dataset(ds["loader"], rt.roots.get(ds["name"]), field=f"datasets.{ds['name']}.root", **ds["options"])


def _load_teachers(refs: list[dict[str, Any]], data: RealData, store: Store, device: torch.device) -> list[nn.Module]:
    from ddray.engine import load_teacher

    teachers = []
    for ref in refs:
        if "checkpoint" in ref:
            net = load_teacher(ref["checkpoint"], ref["arch"], data)
        else:
            net = load_teacher(_cached_teacher_file(store, ref["key"]), ref["arch"], data)
        teachers.append(net.to(device).eval())
    return teachers


def _cached_teacher_file(store: Store, key: str) -> Path:
    """A local copy of a stored teacher: keys are content hashes, so a cached copy never goes stale."""
    path = Path(tempfile.gettempdir()) / "ddray-cache" / "teachers" / f"{key}.pt"
    if not path.is_file():
        blob = store.get_artifact("teachers", key, "weights.pt")
        if blob is None:
            raise RuntimeError(f"teacher {key} is not in the store; its full-data trial must run first")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return path


def _distilled(cfg: dict[str, Any], data: RealData, store: Store):
    from ddray.methods import load_distilled, load_files

    method = cfg["method"]
    if method["kind"] == "files":
        return load_files(method["files"], data, cfg["ipc"], normalized=method["params"].get("normalized", True))
    return load_distilled(store.loc.fs, store.artifact_dir("distilled", cfg["synth"]))


def _run_full(trial: dict[str, Any], data: RealData, store: Store, rt: Runtime, device: torch.device, on_epoch) -> dict[str, Any]:
    from ddray.engine import train_student

    cfg = trial["config"]
    recipe = Protocol.model_validate(cfg["protocol"])
    ck = StoreCheckpointer(store, trial["key"], _checkpoint_every(rt, recipe.epochs))
    res = train_student(data.train_x.to(device), data.train_y.to(device), data, cfg["arch"], recipe,
                        labels="hard", aug=cfg["aug"], seed=cfg["seed"], device=device,
                        checkpointer=ck, on_epoch=on_epoch)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in res.model.state_dict().items()}, buf)
    store.put_artifact("teachers", trial["key"], "weights.pt", buf.getvalue())
    return _result(res)


def _run_synth(trial: dict[str, Any], data: RealData, store: Store, device: torch.device) -> dict[str, Any]:
    from ddray.methods import SynthContext, get_method, save_distilled, synthesize

    cfg = trial["config"]
    entry = get_method(cfg["method"]["kind"])
    params = entry.params_model.model_validate(cfg["method"]["params"])
    teachers = _load_teachers(cfg.get("teachers", []), data, store, device)
    ctx = SynthContext(data=data, ipc=cfg["ipc"], seed=cfg["seed"], params=params,
                       teacher=teachers[0] if teachers else None, device=device)
    ds = synthesize(entry, ctx)
    save_distilled(ds, store.loc.fs, store.artifact_dir("distilled", trial["key"]))
    return {"status": "ok", "synth_s": ds.synth_seconds, "synth_device": ds.device}


def _run_eval(trial: dict[str, Any], data: RealData, store: Store, rt: Runtime, device: torch.device, on_epoch) -> dict[str, Any]:
    from ddray.engine import holdout_split, random_subset, train_student

    cfg = trial["config"]
    protocol = Protocol.model_validate(cfg["protocol"])
    extra: dict[str, Any] = {}
    if cfg["arm"] == "syn":
        ds = _distilled(cfg, data, store)
        x, y = ds.images, ds.labels
        if y.ndim == 2 and cfg["labels"] == "hard":
            y = y.argmax(dim=1)  # a soft-label set evaluated under hard labels: its argmax classes
        extra = {"synth_s": ds.synth_seconds, "synth_device": ds.device}  # None for a user's files
    else:  # rdm: class-balanced random real subset drawn from the trial seed
        idx = random_subset(data.train_y, data.num_classes, cfg["ipc"], cfg["seed"])
        x, y = data.train_x[idx], data.train_y[idx]
    val = None
    if isinstance(protocol.lr, tuple):
        _, va = holdout_split(data.train_y, protocol.val_fraction, cfg["seed"])
        val = (data.train_x[va], data.train_y[va])
    teachers = _load_teachers(cfg.get("teachers", []), data, store, device)
    ck = StoreCheckpointer(store, trial["key"], _checkpoint_every(rt, protocol.epochs))
    res = train_student(x.to(device), y.to(device), data, cfg["arch"], protocol, labels=cfg["labels"],
                        aug=cfg["aug"], seed=cfg["seed"], teachers=teachers, device=device,
                        checkpointer=ck, on_epoch=on_epoch, val=val)
    return {**_result(res), **extra}


def _result(res) -> dict[str, Any]:
    return {"status": res.status, "top1": res.top1, "top5": res.top5, "loss": res.loss, "epochs_run": res.epochs_run}


def execute(trial: dict[str, Any], rt: Runtime, device: torch.device, on_epoch=None) -> dict[str, Any]:
    """Run one trial (a `Trial.to_dict()`) and return its store row (not yet written)."""
    store = Store(rt.store)
    cfg = trial["config"]
    t0 = time.perf_counter()
    data = _data(cfg, rt)
    stage = trial["stage"]
    if stage == "full":
        out = _run_full(trial, data, store, rt, device, on_epoch)
    elif stage == "synth":
        out = _run_synth(trial, data, store, device)
    elif stage == "search":  # tuned track: validation only, the test split is never read
        from ddray.tuning.trials import run_search

        out = run_search(trial, data, _run_eval, store=store, rt=rt, device=device, on_epoch=on_epoch)
    elif stage == "eval" and cfg.get("tuning"):  # tuned track: the cell's winning search config, tested
        from ddray.tuning.trials import run_tuned

        out = run_tuned(trial, data, _run_eval, store=store, rt=rt, device=device, on_epoch=on_epoch)
    elif stage == "eval":
        out = _run_eval(trial, data, store, rt, device, on_epoch)
    else:
        raise InputError(f"unknown stage {stage!r}", path=trial["key"])
    protocol = cfg.get("protocol")
    method = cfg.get("method")
    teachers = cfg.get("teachers") or []
    row = {
        "key": trial["key"], "stage": stage, "track": cfg.get("track", rt.track), "cell": comparison_cell(cfg),
        "method": method["name"] if isinstance(method, dict) else None,
        "dataset": cfg["dataset"]["name"], "ipc": cfg.get("ipc"), "arch": cfg.get("arch"),
        "arm": cfg.get("arm"), "labels": cfg.get("labels"), "aug": cfg.get("aug"), "seed": cfg["seed"],
        "protocol": protocol.get("name") if protocol else None,
        "protocol_json": canonical_json(protocol) if protocol else None,
        "teacher": ",".join(t.get("key") or t.get("checkpoint", "") for t in teachers) or None,
        "config_json": canonical_json(cfg),
        "wall_s": time.perf_counter() - t0, "device": device_name(device),
        "ddray_version": ddray.__version__, "torch_version": torch.__version__,
        "hostname": socket.gethostname(), "finished_at": datetime.now(timezone.utc).replace(microsecond=0),
        **out,
    }
    if stage == "synth":
        row["device"] = out.get("synth_device") or row["device"]
    return row
