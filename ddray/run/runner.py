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
from ddray.plan import Plan
from ddray.run.control import TUNE_SIGINT_ENV
from ddray.run.schedule import ReadyQueue
from ddray.spec import Spec, default_gpu_fraction
from ddray.store import Store
from ddray.store.rows import BadRow
from ddray.store.scan import RowScan
from ddray.trials import STAGES, Trial

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "64")
# Trials keep the driver's working directory, so relative data and `files:` paths mean what the user meant.
os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
os.environ.setdefault(*TUNE_SIGINT_ENV)


@dataclass
class RunSummary:
    """What one `ddray run` did; `exit_code` is the CLI's (0 all stored, 1 some not, 130 interrupted by
    Ctrl-C, 143 by SIGTERM)."""

    planned: int
    already: int
    ran: int = 0                     # trials this driver handed to Ray
    stored: int = 0                  # planned trials stored during this run, by this driver or another
    by_other: int = 0                # ... of which another driver on the same store wrote
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)    # waiting on failed (or missing) dependencies
    not_run: list[str] = field(default_factory=list)    # interrupted, or given up waiting for resources
    interrupted: bool = False
    signum: int = 2                  # the signal that interrupted the run: SIGINT (2) or SIGTERM (15)
    gave_up_after_s: float | None = None
    quarantined: list[tuple[BadRow, str]] = field(default_factory=list)
    stale: list[tuple[BadRow, str]] = field(default_factory=list)   # rows of inputs that changed, set aside

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + self.signum
        return 0 if not (self.failed or self.blocked or self.not_run) else 1


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


def check_store_compat(store: Store, spec_text: str, plan: Plan, scan: RowScan | None = None) -> None:
    """Refuse a spec that measures what the store's rows already measure, another way.

    Judged from the stored rows (each says what it is), not from spec.yaml, which a user can
    delete: growing or slicing a benchmark, or adding a study under another protocol preset, is
    fine; changing a number-changing knob of a stored measurement (epochs 100 -> 3) is not, because
    the report would then hold two answers to one question. `scan`: the run's one read of the rows.
    """
    from ddray.stored import conflicts

    if store.stored_spec() == spec_text:
        return
    rows = (scan.table if scan is not None else store.read_table()).column("config_json").to_pylist()
    found = conflicts(plan.trials, rows)
    if found:
        raise InputError(
            f"store '{store.uri}' already holds these trials computed another way (a protocol, teacher or data knob "
            f"changed): {'; '.join(found)}. Use a new store for the new recipe, or keep the old one and only add "
            "methods, seeds, IPCs, archs or another protocol preset.", path="store")


def resolve_gpus(trials: Iterable[Trial], cluster_gpus: float) -> dict[str, float]:
    """'auto' GPU fractions: the arch default on a cluster with GPUs, else 0."""
    out = {}
    for t in trials:
        if t.gpu == "auto":
            arch = getattr(t.config, "arch", None) or "convnet"
            out[t.key] = default_gpu_fraction(arch) if cluster_gpus > 0 else 0.0
        else:
            out[t.key] = float(t.gpu)
    return out


def _absolute(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return os.path.abspath(os.path.expanduser(path))


def absolute_inputs(config: dict[str, Any]) -> dict[str, Any]:
    """A config with its input files' paths absolute, for workers that run in other directories.

    Keys leave these paths out (`trials.key_dump`), so this changes what a worker reads from, never
    which trial it is; a relative `files:` path means what it meant where `ddray run` was typed.
    """
    out = dict(config)
    method = out.get("method")
    if isinstance(method, dict) and method.get("files"):
        out["method"] = {**method, "files": _absolute(method["files"])}
    if out.get("checkpoint"):
        out["checkpoint"] = _absolute(out["checkpoint"])
    if out.get("teachers"):
        out["teachers"] = [{**t, "checkpoint": _absolute(t["checkpoint"])} if t.get("checkpoint") else t
                           for t in out["teachers"]]
    return out


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
    if c.stage == "full":
        return 0, -float(c.epochs)
    if c.stage == "synth":
        return 1, 0.0
    return 2, -float(c.epochs) * float(c.ipc)


def _tune(searcher, todo: list[Trial], env: dict[str, Any], owner: str, max_failures: int, callbacks: list,
          stopper, tune_dir: str, name: str, verbose: bool) -> None:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from ddray.run.trainable import run_trial

    def resources(config: dict[str, Any]):
        tr = config["trial"]
        bundle = {"CPU": float(tr["cpu"])}
        if tr["gpu"]:
            bundle["GPU"] = float(tr["gpu"])
        return tune.PlacementGroupFactory([bundle])

    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        param_space={"env": env, "owner": owner},
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=len(todo), reuse_actors=True,
                                    trial_name_creator=lambda t: t.config["trial"]["key"],
                                    trial_dirname_creator=lambda t: t.config["trial"]["key"]),
        run_config=tune.RunConfig(name=name, storage_path=tune_dir, verbose=2 if verbose else 0, stop=stopper,
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  callbacks=[*callbacks, JsonLoggerCallback()],
                                  log_to_file=True),
    )
    tuner.fit()


def _pending(plan: Plan, store: Store, retry_errored: bool, summary: RunSummary,
             roots: dict[str, str | None], scan: RowScan) -> tuple[set[str], list[Trial]]:
    """(stored keys, trials to run): bad row files are moved to quarantine first, and rows whose
    files or data changed to stale/ (`ddray.freshness`), so both rerun. `scan`: the run's one read
    of the rows."""
    from ddray.freshness import stale_rows

    summary.quarantined = list(zip(scan.bad, store.quarantine(scan.bad)))
    stale = [BadRow(s.stage, f"{s.key}.parquet", store.row_path(s.stage, s.key), s.reason)
             for s in stale_rows(plan.by_key, scan.table.select(["key", "stage", "inputs_json"]).to_pylist(), roots)]
    summary.stale = list(zip(stale, store.quarantine(stale, folder="stale")))
    stored = {k for keys in scan.keys.values() for k in keys} - {b.key for b in stale}
    todo = [t for t in plan.trials if t.key not in stored]
    if retry_errored:
        errors = store.errors_of()
        todo = [t for t in todo if t.key in errors]
    summary.already = sum(t.key in stored for t in plan.trials)
    return stored, todo


def _check_capacity(todo: list[Trial], gpus: dict[str, float], capacity, bar) -> None:
    """Exit 2 before any work when no node can ever hold a trial; on an autoscaling cluster, warn."""
    from ddray.run.capacity import capacity_warnings, infeasible_messages, trial_bundle

    if not capacity.autoscaler:
        never = infeasible_messages(((trial_bundle(t.cpu, gpus[t.key]), t.label) for t in todo), capacity)
        if never:
            raise InputError([("resources", m) for m in never])
    for message in capacity_warnings(todo, gpus, capacity):  # trials wait for nodes; warn only if never
        bar.warn(message)


def run_plan(spec: Spec, plan: Plan, store: Store, *, address: str | None = None, max_failures: int | None = None,
             retry_errored: bool = False, verbose: bool = False, progress: bool = True,
             roots: dict[str, str | None] | None = None, max_wait_s: float | None = None,
             scan: RowScan | None = None) -> RunSummary:
    """Run every planned trial missing from the store; return what happened.

    `scan`: the store's rows as the caller already read them (`ddray run` reads them once, for its
    recipe check and for this). Rows are read once more at the end, from the index the run keeps
    compacted (`run/compactor.py`), where only the rows stored since are read from their files.
    """
    from ddray.run.compactor import Compactor, final_scan

    summary = RunSummary(planned=len(plan.trials), already=0)
    roots = roots if roots is not None else {n: _absolute(d.root) for n, d in spec.datasets.items()}
    scan = scan if scan is not None else store.scan()
    stored, todo = _pending(plan, store, retry_errored, summary, roots, scan)
    if not todo:
        if scan.table.num_rows > scan.indexed:  # rows no compaction has folded in yet (a killed driver's)
            final_scan(store)
        return summary
    init_ray(address, verbose)
    from ddray.run.capacity import read_capacity, read_view
    from ddray.run.control import Interrupt, RunStopper
    from ddray.run.progress import ProgressCallback
    from ddray.run.searcher import DependencySearcher
    from ddray.store.leases import Leases, new_owner

    # An autoscaling cluster may have no GPU *now*: 'auto' looks at the node types it can add too.
    capacity = read_capacity()
    gpus = resolve_gpus(todo, 1.0 if capacity.may_have_gpus else 0.0)
    # Workers run in other directories (and on other nodes): give them an absolute location.
    env = {"store": store.loc.root if store.loc.is_local else store.uri,
           "roots": roots,
           "checkpoint_every": spec.runtime.checkpoint_every, "cache_gb": spec.runtime.cache_gb}
    queue = ReadyQueue(todo, stored, expected_work)
    configs = {t.key: {**t.to_dict(), "config": absolute_inputs(t.config.model_dump(mode="json")), "gpu": gpus[t.key]}
               for t in todo}
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "1" if verbose else "0"  # one line per failure instead (bar)
    owner = new_owner()  # this run's id: the leases its workers take carry it
    compactor = Compactor(store)
    with ProgressCallback(total=len(plan.trials), done=summary.already, enabled=progress,
                          cluster_view=None if address is None else read_view,
                          describe=lambda key: _last_error(store, key)) as bar:
        _check_capacity(todo, gpus, capacity, bar)
        searcher = DependencySearcher(queue, configs, lambda t: store.has_row(t.stage, t.key), Leases(store, owner))
        with Interrupt(searcher.interrupt) as interrupt:
            stopper = RunStopper(interrupt.event, bar.starved, max_wait_s)
            tune_dir = tempfile.mkdtemp(prefix="ddray-tune-")
            try:
                bar.set_stage("+".join(sorted({t.stage for t in todo}, key=STAGES.index)), len(todo))
                mf = spec.runtime.max_failures if max_failures is None else max_failures
                _tune(searcher, todo, env, owner, mf, [bar, compactor], stopper, tune_dir, spec.name, verbose)
            finally:
                shutil.rmtree(tune_dir, ignore_errors=True)
    _summarize(summary, compactor.finish().keys, queue, searcher, todo, interrupted=interrupt.is_set,
               gave_up_after_s=max_wait_s if stopper.gave_up else None)
    if interrupt.is_set:
        summary.signum = interrupt.signum or summary.signum
        searcher.leases.release_owned([t.key for t in todo])  # its workers were stopped: free their keys now
    return summary


def _summarize(summary: RunSummary, done: dict[str, set[str]], queue: ReadyQueue, searcher, todo: list[Trial], *,
               interrupted: bool, gave_up_after_s: float | None) -> None:
    stored = {k for keys in done.values() for k in keys}
    summary.ran = len(searcher.keys)
    summary.stored = sum(t.key in stored for t in todo)
    # Whatever this run's workers did not write themselves, another driver on the store did.
    summary.by_other = sum(t.key in stored and t.key not in searcher.written for t in todo)
    summary.failed = sorted(k for k in queue.failed if k not in stored)
    summary.interrupted, summary.gave_up_after_s = interrupted, gave_up_after_s
    left = [t.key for t in todo if t.key not in stored and t.key not in queue.failed]
    if interrupted or gave_up_after_s is not None:
        summary.not_run = left
    else:
        summary.blocked = queue.unstarted()


def _last_error(store: Store, key: str) -> str:
    err = store.errors_of([key]).get(key)
    if err:
        return err["exception"].splitlines()[0]
    return ("no error stored: the worker died, or the store could not take its error (a full disk?); "
            "the worker's log says which (ddray run -v)")
