"""The Tune function trainable: one planned trial in a Ray worker.

The worker, not the driver, writes the row: once `write_row` returns, the result survives any
crash of the driver. A failure is stored with its traceback before re-raising, so Tune can retry
it (FailureConfig) and `ddray status` can say why.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import ray
import torch
from ray import tune

from ddray.engine.device import free_device_memory, keep_freed_memory
from ddray.errors import InputError
from ddray.run.execute import execute
from ddray.run.worker_env import WorkerEnv
from ddray.store import Store, StoreCheckpointer
from ddray.store.leases import Leases
from ddray.trials import Trial


def trial_device(gpu: float) -> torch.device:
    """CUDA when Ray gave this trial a (fraction of a) real GPU, else CPU (fake GPUs in tests)."""
    if gpu and torch.cuda.is_available() and ray.get_gpu_ids():
        return torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to the assigned GPU
    return torch.device("cpu")


def resume_notice(key: str, label: str):
    """An `on_epoch` that says once, in the worker's log, when a retry continues from a stored checkpoint.

    Why: a trial retried on another node (preemption, lost node) should visibly continue where it
    stopped; its first epoch here is then not 1. `ddray run -v` shows the line on the driver.
    """
    first = True

    def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        nonlocal first
        if first and epoch > 1:
            print(f"ddray: {key} ({label}) resumed from its checkpoint after epoch {epoch - 1}", file=sys.stderr, flush=True)
        first = False

    return on_epoch


def epoch_progress(epochs: int | None, every_s: float | None = None, report=None):
    """An `on_epoch` that tells the driver how far a long trial is, at most once per `every_s`.

    Why: a full-data arm or a 1000-epoch evaluation runs for an hour on a CPU core; without this
    the progress bar and its ETA stand still until it ends. Each report is a Tune result
    (`stored: 0`), a round trip to the driver, hence the rate limit.
    """
    if every_s is None:  # DDRAY_PROGRESS_EVERY_S=0 reports every epoch (tests exercise the path with it)
        every_s = float(os.environ.get("DDRAY_PROGRESS_EVERY_S", "10"))
    last = time.monotonic()
    send = tune.report if report is None else report

    def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        nonlocal last
        now = time.monotonic()
        if epochs and now - last >= every_s:
            last = now
            send({"stored": 0, "epoch": epoch, "epochs": int(epochs), "top1": -1.0})

    return on_epoch


def _both(*callbacks):
    def on_epoch(epoch: int, metrics: dict[str, Any]) -> None:
        for cb in callbacks:
            cb(epoch, metrics)

    return on_epoch


def run_trial(config: dict[str, Any]) -> None:
    """Run one planned trial and store its row; `config` is `{"trial": Trial.to_dict(), "env": WorkerEnv
    fields, "owner": the driver's run id[, "takeover": the stale lease's token]}`.

    A deterministic input error (a bad file, a class too small for the IPC) is stored and reported
    as a failed trial without raising, so Tune does not retry it: the same input fails the same way.
    Any other failure, from the first look at the store to the row write (a full disk, a folder
    without permission), is stored with its traceback and re-raised, so Tune retries it and
    `ddray status` and the console say why.
    The trial trains under its lease (`store/leases.py`): when another driver's worker holds it,
    this one reports `elsewhere` and its driver waits for that row.
    """
    trial, env = Trial.from_dict(config["trial"]), WorkerEnv(**config["env"])
    torch.set_num_threads(max(1, int(trial.cpu)))
    store = Store(env.store)
    try:
        result = _leased(trial, env, store, config["owner"], config.get("takeover"))
    except InputError as exc:
        _note_failure(store, trial, exc)
        result = {"stored": 0, "failed": 1, "top1": -1.0}
    except BaseException as exc:
        _note_failure(store, trial, exc)
        raise
    tune.report(result)


def _note_failure(store: Store, trial: Trial, exc: BaseException) -> None:
    """Store the failure; when even that cannot be written (the disk is full), say it in the worker's log."""
    try:
        store.write_error(trial.key, trial.stage, trial.label, exc)
    except Exception as e:  # noqa: BLE001 — the trial's own error is what propagates
        print(f"ddray: {trial.key} ({trial.label}) failed with {type(exc).__name__}: {exc}; its error could not "
              f"be stored either: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def _leased(trial: Trial, env: WorkerEnv, store: Store, owner: str, takeover: str | None) -> dict[str, Any]:
    if store.has_row(trial.stage, trial.key):  # a duplicate launch (e.g. after a lost driver)
        return {"stored": 1, "top1": -1.0}
    leases = Leases(store, owner=owner)
    with leases.holding(trial.key, takeover) as held:
        if not held:  # another driver's worker trains it now: its driver waits for the row instead
            return {"stored": 0, "elsewhere": 1, "top1": -1.0}
        if store.has_row(trial.stage, trial.key):  # stored by a holder that released between our check and claim
            return {"stored": 1, "top1": -1.0}
        leases.training(trial.key)
        return _train_and_store(trial, env, store)


def _train_and_store(trial: Trial, env: WorkerEnv, store: Store) -> dict[str, Any]:
    device = trial_device(float(trial.gpu or 0))
    if device.type == "cpu":  # every stage, synthesis included, reuses its freed activations
        keep_freed_memory()
    try:
        on_epoch = _both(resume_notice(trial.key, trial.label), epoch_progress(getattr(trial.config, "epochs", None)))
        row = execute(trial, env, device, on_epoch=on_epoch, store=store)
        wrote = store.write_row(row)
        StoreCheckpointer(store, trial.key, 0).clear()
    finally:  # a reused actor's next trial starts without this one's cached blocks (heap and GPU)
        free_device_memory()
    top1 = row.top1
    return {"stored": 1, "wrote": int(wrote), "top1": -1.0 if top1 is None else float(top1), "pid": os.getpid()}
