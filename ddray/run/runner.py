"""Drive a plan to completion: the store decides what runs, Ray Tune runs it.

Tune's own restore re-runs finished trials after a driver kill (DESIGN §7), so resume is ddray's:
each run lists the keys already stored and hands only the missing ones to one Ray Tune `Tuner`,
whose Searcher (`run/schedule.py`) releases a trial as soon as its dependencies (teachers,
distilled sets, search trials) are stored. So full-data/teachers → synthesis → evaluation holds
per trial while independent work overlaps, and trials whose dependencies failed wait for a later
run instead of failing.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ddray.errors import InputError
from ddray.plan import STAGES, Plan, Trial
from ddray.run.schedule import ReadyQueue
from ddray.spec import Spec, default_gpu_fraction
from ddray.store import Store

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "64")
# Trials keep the driver's working directory, so relative data and `files:` paths mean what the user meant.
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")


@dataclass
class RunSummary:
    planned: int
    already: int
    ran: int = 0
    stored: int = 0
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if not self.failed and not self.blocked else 1


def check_address(address: str | None) -> None:
    """Fail fast (exit 2) when a cluster address does not answer, before any work starts."""
    if not address or address == "auto" or address.startswith("local"):
        return
    url = urlparse(address if "://" in address else f"tcp://{address}")
    host, port = url.hostname, url.port or (10001 if url.scheme == "ray" else 6379)
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise InputError(f"cluster address {address} does not answer ({e.strerror or e}); start the cluster or fix --address", path="address") from None


def check_store_compat(store: Store, spec_text: str, plan: Plan) -> None:
    """Refuse a different benchmark in the same store; growing or slicing the same one is fine."""
    from ddray.plan import make_plan
    from ddray.spec import parse_spec

    old_text = store.stored_spec()
    if old_text is None or old_text == spec_text:
        return
    from ddray.yaml_strict import load

    try:
        old = parse_spec(load(old_text))
    except Exception:  # noqa: BLE001 — a stored spec from another ddray version: judge by keys alone
        return
    old_keys, new_keys = make_plan(old).keys(), plan.keys()
    if old_keys <= new_keys or new_keys <= old_keys:
        return
    raise InputError(
        f"store '{store.uri}' holds the benchmark '{old.name}' whose trials differ from this spec's "
        f"({len(new_keys - old_keys)} new, {len(old_keys - new_keys)} dropped keys): the protocol or data changed. "
        "Use a new store, or keep the old spec and only add methods, seeds, IPCs or archs.", path="store")


def resolve_gpus(trials: Iterable[Trial], cluster_gpus: float) -> dict[str, float]:
    """'auto' GPU fractions: the arch default on a cluster with GPUs, else 0."""
    out = {}
    for t in trials:
        if t.gpu == "auto":
            arch = t.config.get("arch") or "convnet"
            out[t.key] = default_gpu_fraction(arch) if cluster_gpus > 0 else 0.0
        else:
            out[t.key] = float(t.gpu)
    return out


def _absolute(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def init_ray(address: str | None, verbose: bool) -> None:
    import logging

    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = dict(log_to_driver=verbose, configure_logging=True,
                                  logging_level=logging.INFO if verbose else logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **kwargs)


def expected_work(trial: Trial) -> tuple[int, float]:
    """A sort key that puts the longest ready trials first (full-data, then synthesis, then by epochs x IPC).

    Why: Tune starts trials in the order the Searcher hands them out, and a run ends when its last
    trial does. Started longest first, the short trials fill the slots at the end instead of one
    long trial running alone while the other slots idle (list scheduling, "longest processing
    time first"). Only the order is estimated: an evaluation's steps grow with epochs x images
    (IPC x classes, the same for every trial of a dataset); full-data trials see the whole train
    split; a synthesis' cost depends on its method, so it is taken as long.
    """
    c = trial.config
    if trial.stage == "full":
        return 0, -float((c.get("protocol") or {}).get("epochs", 1))
    if trial.stage == "synth":
        return 1, 0.0
    return 2, -float((c.get("protocol") or {}).get("epochs", 1)) * float(c.get("ipc") or 1)


def _tune(queue: ReadyQueue, todo: list[Trial], gpus: dict[str, float], runtime: dict[str, Any], store: Store,
          max_failures: int, callbacks: list, tune_dir: str, name: str, verbose: bool) -> None:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from ddray.run.searcher import DependencySearcher
    from ddray.run.trainable import run_trial

    configs = {t.key: {**t.to_dict(), "gpu": gpus[t.key]} for t in todo}

    def resources(config: dict[str, Any]):
        tr = config["trial"]
        bundle = {"CPU": float(tr["cpu"])}
        if tr["gpu"]:
            bundle["GPU"] = float(tr["gpu"])
        return tune.PlacementGroupFactory([bundle])

    searcher = DependencySearcher(queue, configs, lambda t: store.has_row(t.stage, t.key))
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        param_space={"runtime": runtime},
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=len(todo), reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["trial"]["key"],
                                    trial_dirname_creator=lambda t: t.config["trial"]["key"]),
        run_config=tune.RunConfig(name=name, storage_path=tune_dir, verbose=2 if verbose else 0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  callbacks=[*callbacks, JsonLoggerCallback()],
                                  log_to_file=True),
    )
    tuner.fit()


def run_plan(spec: Spec, plan: Plan, store: Store, *, address: str | None = None, max_failures: int | None = None,
             retry_errored: bool = False, verbose: bool = False, progress: bool = True,
             roots: dict[str, str | None] | None = None, track: str = "fixed") -> RunSummary:
    """Run every planned trial missing from the store; return what happened."""
    stored = store.stored_keys()
    todo = [t for t in plan.trials if t.key not in stored]
    if retry_errored:
        errors = store.errors_of()
        todo = [t for t in todo if t.key in errors]
    summary = RunSummary(planned=len(plan.trials), already=sum(t.key in stored for t in plan.trials))
    if not todo:
        return summary
    init_ray(address, verbose)
    from ddray.run.capacity import capacity_warnings, read_capacity, read_view
    from ddray.run.progress import ProgressCallback

    # An autoscaling cluster may have no GPU *now*: 'auto' looks at the node types it can add too.
    capacity = read_capacity()
    gpus = resolve_gpus(todo, 1.0 if capacity.may_have_gpus else 0.0)
    # Workers run in other directories (and on other nodes): give them an absolute location.
    runtime = {"store": store.loc.root if store.loc.is_local else store.uri, "roots": roots if roots is not None else {n: _absolute(d.root) for n, d in spec.datasets.items()},
               "checkpoint_every": spec.runtime.checkpoint_every, "track": track}
    mf = spec.runtime.max_failures if max_failures is None else max_failures
    queue = ReadyQueue(todo, stored, expected_work)
    tune_dir = tempfile.mkdtemp(prefix="ddray-tune-")
    try:
        with ProgressCallback(total=len(plan.trials), done=summary.already, enabled=progress,
                              cluster_view=None if address is None else read_view) as bar:
            for message in capacity_warnings(todo, gpus, capacity):  # trials wait for nodes; warn only if never
                bar.warn(message)
            if not queue.finished:
                bar.set_stage("+".join(sorted({t.stage for t in todo}, key=STAGES.index)), len(todo))
                _tune(queue, todo, gpus, runtime, store, mf, [bar], tune_dir, spec.name, verbose)
    finally:
        shutil.rmtree(tune_dir, ignore_errors=True)
    stored = store.stored_keys()
    summary.ran = len(queue.done | queue.failed)
    summary.stored = sum(t.key in stored for t in todo)
    summary.failed = sorted(k for k in queue.failed if k not in stored)
    summary.blocked = queue.unstarted()
    return summary
