"""Autoscaling, proven on one machine: `ddray run --address` against the laptop cluster (Ray's fake
multi-node provider) whose fake-GPU workers start from 0.

- Trials that ask for `gpu: 0.25` wait for the autoscaler instead of failing; nodes come from 0,
  several trials share one node's GPU at once, every trial is stored exactly once, and the
  workers go back to 0 after the idle timeout.
- A worker node killed mid-trial (what a reclaimed spot instance does): the run completes, the
  lost trials continue from their store checkpoints on a new node, nothing is lost or doubled.

The cluster is driven from the test process; `ddray run` is a subprocess (DESIGN §7). The fixture
stops only the cluster it started (never `ray stop`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddray.cluster.local import LocalCluster, _cluster_pids, start_local_cluster
from ddray.store import Store
from tests.conftest import REPO, planned, wait_for_workers, write_spec

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`

NODE_ID_VAR = b"RAY_OVERRIDE_NODE_ID_FOR_TESTING="  # the fake provider's node id, inherited by the node's processes
QUARTER = {"cpu": 0.5, "gpu": 0.25}


def _spec(name: str, methods: dict, seeds: list[int], ipc: int, epochs: int, **extra) -> dict:
    return {
        "name": name, "datasets": {"digits": {}}, "methods": methods, "ipc": [ipc],
        "archs": ["convnet-d1-w16"], "seeds": seeds, "protocol": "rd3",
        "overrides": {"epochs": epochs, "batch_size": 10},
        "arms": [{"arm": "syn", "labels": "hard", "aug": False}],
        "resources": {"synth": QUARTER, "convnet-d1-w16": QUARTER},
        **extra,
    }


@pytest.fixture(scope="module")
def cluster():
    """Fake-GPU workers (2 CPU, 1 GPU each) from 0 to 2; idle ones go back after 6 s."""
    with pytest.MonkeyPatch.context() as mp:  # the cluster's processes inherit this environment
        mp.setenv("PYTHONPATH", f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")  # plugin methods
        mp.setenv("AUTOSCALER_HEARTBEAT_TIMEOUT_S", "10")   # a lost node is let go after 10 s, not 30
        mp.setenv("RAY_health_check_period_ms", "1000")     # ... and declared dead in ~5 s, not ~15
        c = start_local_cluster(idle_timeout_minutes=0.1, max_workers=2, cpus_per_node=2, gpus_per_node=1)
    try:
        yield c
    finally:
        c.stop()  # this cluster's processes only


def _ddray_run(spec: dict, tmp_path: Path, address: str, *args: str) -> tuple[subprocess.Popen, Path, Path]:
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    store_dir, log_path = tmp_path / "store", tmp_path / "run.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "ddray.cli", "run", str(spec_path), "--store", str(store_dir),
           "--address", address, *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, store_dir, log_path


def _finish(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stored_once(store_dir: Path, plan) -> None:
    keys = Store(str(store_dir)).read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(plan.keys()), "a planned trial is missing or was stored twice"


def test_gpu_trials_wait_for_nodes_share_a_gpu_node_and_nodes_go_back(cluster: LocalCluster, tmp_path):
    assert cluster.num_worker_nodes() == 0
    probes = tmp_path / "probes"
    probes.mkdir()
    # four quarter-GPU synthesis probes that wait for each other, then four quarter-GPU evaluations
    probe = {"kind": "tests.plugin_methods:noded", "log": str(probes), "together": 4, "seconds": 0.5}
    spec = _spec("autoscale", {"probe": probe}, seeds=[0, 1, 2, 3], ipc=1, epochs=2)
    plan = planned(spec)
    proc, store_dir, log_path = _ddray_run(spec, tmp_path, cluster.address)
    most = 0
    try:
        while proc.poll() is None:
            most = max(most, cluster.num_worker_nodes())
            time.sleep(0.5)
    finally:
        rc = _finish(proc, 5)
    out = log_path.read_text(errors="replace")
    assert rc == 0, out[-5000:]
    assert 1 <= most <= 2, "no worker node joined (or more than max_workers)"

    spans = [json.loads(p.read_text()) for p in probes.glob("*.json")]
    assert len(spans) == 4 and all(s["gpus"] is not None for s in spans), spans  # Ray gave each a fake GPU
    shared = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]
              if a["node"] == b["node"] and a["start"] < b["end"] and b["start"] < a["end"]]
    assert shared, f"no two trials ran on one GPU node at once: {spans}"
    _stored_once(store_dir, plan)
    assert not Store(str(store_dir)).errors_of()
    # the run said what it waited for: nodes joining, trials waiting on resources
    assert re.search(r"cluster: [12] worker node\(s\) \(was 0\)", out), out[-3000:]
    assert "waiting for resources" in out and "will wait and never start" not in out

    assert wait_for_workers(cluster, lambda n: n == 0, timeout=60) == 0  # idle workers are released


def _node_pids(cluster: LocalCluster, node_id: str) -> list[int]:
    """Every process of one fake worker node (raylet, agents, workers): they carry its node id."""
    needle = NODE_ID_VAR + node_id.encode() + b"\0"
    pids = []
    for pid in _cluster_pids(cluster.pid, cluster.marker):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes() + b"\0":
                pids.append(pid)
        except OSError:
            continue
    return pids


def _trial_nodes(cluster: LocalCluster) -> set[str]:
    """Worker nodes where a Tune trial process runs now."""
    nodes = set()
    for n in cluster.nodes():
        if n.alive and not n.is_head:
            for pid in _node_pids(cluster, n.node_id):
                try:
                    if b"ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        nodes.add(n.node_id)
                except OSError:
                    continue
    return nodes


def _ckpt_epoch(store_dir: Path, key: str) -> int | None:
    try:
        state = torch.load(store_dir / "artifacts" / "ckpt" / key / "state.pt", map_location="cpu", weights_only=True)
    except (FileNotFoundError, EOFError, RuntimeError):  # not written yet, or cleared as we read
        return None
    return int(state["run"]["epoch"]) if state.get("run") else None


def test_worker_node_killed_mid_trial_loses_nothing(cluster: LocalCluster, tmp_path):
    """Each trial takes a whole node, so two nodes come up and each runs one evaluation; one node is
    killed once both have checkpointed. Its trial goes back to pending and continues, from its
    checkpoint, on the node that is left.

    The two syntheses wait for each other (the `noded` probe), so both nodes are up before either
    evaluation starts: a trial that is ready starts at once, and on an idle machine one evaluation
    could otherwise finish before the autoscaler had brought up the second node.

    Why not wait for a replacement node: the fake provider keeps a killed node in its instance list
    (a real cloud provider sees the instance gone), so its autoscaler never replaces it.
    """
    epochs = 30
    whole = {"cpu": 2, "gpu": 1}
    probes = tmp_path / "probes"
    probes.mkdir()
    probe = {"kind": "tests.plugin_methods:noded", "log": str(probes), "together": 2}
    spec = _spec("preempt", {"probe": probe}, seeds=[0, 1], ipc=10, epochs=epochs, runtime={"checkpoint_every": 1})
    spec["resources"] = {"synth": whole, "convnet-d1-w16": whole}
    plan = planned(spec)
    evals = [t.key for t in plan.stage("eval")]
    proc, store_dir, log_path = _ddray_run(spec, tmp_path, cluster.address, "--no-progress", "-v")
    try:
        deadline = time.monotonic() + 120
        while not all((_ckpt_epoch(store_dir, k) or 0) >= 3 for k in evals):  # both evaluations are mid-way
            assert proc.poll() is None, log_path.read_text(errors="replace")[-5000:]
            assert time.monotonic() < deadline, "the evaluations did not checkpoint in time"
            assert not any((store_dir / "rows" / "eval" / f"{k}.parquet").exists() for k in evals), \
                "an evaluation finished before both were running"
            time.sleep(0.05)
        nodes = _trial_nodes(cluster)
        assert len(nodes) == 2, nodes
        lost = sorted(nodes)[0]
        for pid in _node_pids(cluster, lost):  # the node vanishes at once, as a reclaimed spot VM does
            os.kill(pid, signal.SIGKILL)
        rc = _finish(proc, 120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log_path.read_text(errors="replace")
    assert rc == 0, out[-5000:]
    assert not any(n.alive and n.node_id == lost for n in cluster.nodes())
    _stored_once(store_dir, plan)
    store = Store(str(store_dir))
    assert not store.errors_of()
    rows = store.read_rows().set_index("key")
    assert (rows.loc[evals, "epochs_run"] == epochs).all()
    assert re.search(r"Actor(Died|Unavailable)Error", out), "no trial failed with its node"
    # the lost trial continued from its checkpoint on the other node instead of starting over
    resumed = re.findall(r"ddray: (\w+) \(.*\) resumed from its checkpoint after epoch (\d+)", out)
    # (one line per resume; Ray's log monitors of the fake nodes share one log folder and may repeat it)
    assert len({key for key, _ in resumed}) == 1 and resumed[0][0] in evals and int(resumed[0][1]) >= 3, out[-5000:]
