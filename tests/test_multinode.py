"""A worker node lost mid-trial on a multi-node Ray cluster (`ray.cluster_utils.Cluster`, all on
this machine): the trial is retried on a node that joins later, continues from the checkpoint it
left in the store, and ends with the numbers of an uninterrupted run; every planned trial is
stored exactly once.

The cluster is driven from the test process and `ddray run` is a subprocess (DESIGN §7). Why the
eval trials ask for one (fake) GPU: only node A has one, so they run there, and once A is gone
the retry must wait for node C. That wait makes the test deterministic: while it lasts the
interrupted trial has a checkpoint and no row, and nothing can overwrite either.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ddray.store import Store
from tests.conftest import REPO, planned, write_spec

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`

EPOCHS = 40
SPEC = {
    "name": "multinode",
    "datasets": {"digits": {}},
    "methods": {"random": {}},
    "ipc": [50],
    "archs": ["convnet-d1-w16"],
    "seeds": [0],
    "protocol": "rd3",
    "overrides": {"epochs": EPOCHS, "batch_size": 10},
    "arms": [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": False}],
    "resources": {"synth": {"cpu": 1, "gpu": 0}, "convnet-d1-w16": {"cpu": 1, "gpu": 1}},
    "runtime": {"checkpoint_every": 1},
}


@pytest.fixture
def cluster(monkeypatch):
    """Head without CPUs, node A (1 CPU, 1 fake GPU) and node B (1 CPU), in a Ray temp dir of its own."""
    from ray.cluster_utils import Cluster

    tmp = tempfile.mkdtemp(prefix="ddmn-")  # short: Ray's socket paths must stay under ~107 chars
    monkeypatch.setenv("RAY_TMPDIR", tmp)   # also keeps `ray_current_cluster` out of the shared /tmp/ray
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # The GPU is only a scheduling token here: the nodes' workers see no CUDA device even on a GPU
    # machine, so every attempt and the reference run train on the CPU (bit-exact comparison).
    monkeypatch.setenv("RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # hides every device; Ray takes it as one GPU id
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        a = c.add_node(num_cpus=1, num_gpus=1)
        c.add_node(num_cpus=1)
        yield c, a
    finally:
        c.shutdown()  # removes only this cluster's nodes (never `ray stop`)
        shutil.rmtree(tmp, ignore_errors=True)


def _ckpt_epoch(store_dir: Path, key: str) -> int | None:
    """The epoch of a trial's resume checkpoint in the store, or None when it has none."""
    path = store_dir / "artifacts" / "ckpt" / key / "state.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, EOFError, RuntimeError):  # not written yet, or cleared as we read
        return None
    return int(state["run"]["epoch"]) if state.get("run") else None


def _has_row(store_dir: Path, key: str) -> bool:
    return (store_dir / "rows" / "eval" / f"{key}.parquet").exists()


def test_node_lost_mid_trial_resumes_from_checkpoint_elsewhere(cluster, tmp_path):
    c, node_a = cluster
    spec_path = write_spec(tmp_path / "spec.yaml", SPEC)
    plan = planned(SPEC)
    evals = [t.key for t in plan.stage("eval")]
    store_dir = tmp_path / "store"
    log_path = tmp_path / "run.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ddray.cli", "run", str(spec_path), "--store", str(store_dir),
           "--address", c.address, "--max-failures", "3", "--no-progress", "-v"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # 1. wait until an eval trial (on node A, the only GPU node) has checkpointed a few epochs
        victim, seen = None, 0
        deadline = time.monotonic() + 150
        while victim is None:
            assert proc.poll() is None, log_path.read_text()[-5000:]
            assert time.monotonic() < deadline, "no eval trial checkpointed in time\n" + log_path.read_text()[-5000:]
            for key in evals:
                epoch = _ckpt_epoch(store_dir, key)
                if epoch is not None and epoch >= 3 and not _has_row(store_dir, key):
                    victim, seen = key, epoch
                    break
            time.sleep(0.05)

        # 2. node A goes away mid-trial; with no GPU left the retry cannot start anywhere yet
        c.remove_node(node_a)
        time.sleep(2)
        assert not _has_row(store_dir, victim), "the trial finished before its node was removed"
        kept = _ckpt_epoch(store_dir, victim)
        assert kept is not None and seen <= kept < EPOCHS
        assert proc.poll() is None, log_path.read_text()[-5000:]

        # 3. a new GPU node joins; the run completes there
        c.add_node(num_cpus=1, num_gpus=1)
        rc = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    out = log_path.read_text(errors="replace")
    assert rc == 0, out[-5000:]
    assert "ActorDiedError" in out, "the trial did not fail with its node"

    store = Store(str(store_dir))
    keys = store.read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(plan.keys()), "a planned trial is missing or was stored twice"
    assert not store.errors_of()
    assert not (store_dir / "artifacts" / "ckpt" / victim).exists(), "the finished trial left its checkpoint"
    # the retry continued from the checkpoint left when node A was lost, not from epoch 0
    resumed = re.search(rf"ddray: {victim} \(.*\) resumed from its checkpoint after epoch (\d+)", out)
    assert resumed, out[-5000:]
    assert seen <= kept <= int(resumed.group(1)) < EPOCHS

    # 4. and it ended exactly where an uninterrupted run of the same trial ends
    row = store.read_rows().set_index("key").loc[victim]
    assert row["epochs_run"] == EPOCHS
    assert row["device"].startswith("cpu")
    clean = _uninterrupted(plan.by_key[victim], store_dir, tmp_path / "clean")
    assert (clean.top1, clean.top5, clean.loss) == (row["top1"], row["top5"], row["loss"])


def _uninterrupted(trial, store_dir: Path, clean_dir: Path):
    """The same trial run start to end in this process, on a copy of its dependencies only."""
    from ddray.run.execute import execute
    from ddray.run.worker_env import WorkerEnv

    shutil.copytree(store_dir, clean_dir, ignore=shutil.ignore_patterns("eval", "ckpt"))
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(trial.cpu)))  # as the Ray trainable does
    try:
        return execute(trial, WorkerEnv(store=str(clean_dir), checkpoint_every=1), device)
    finally:
        torch.set_num_threads(threads)
