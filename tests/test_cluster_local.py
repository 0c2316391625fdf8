"""The laptop autoscaling cluster: fake-GPU nodes come from 0 for fractional-GPU work, several
tasks share a node's GPU, idle nodes go back to 0, and `down` ends only this cluster's processes.

The Ray driver runs in a subprocess so that nothing of it (connection, auth mode) leaks into
the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from ddray.cluster.cli import cluster_app
from ddray.cluster.local import LocalCluster, _cluster_pids, start_local_cluster
from tests.conftest import wait_for_workers

pytestmark = pytest.mark.ray  # starts a Ray cluster: not in `make test-fast`

N_TASKS = 6  # > 4 quarter-GPU tasks per 1-GPU node: needs a second node

DRIVER = r"""
import json, os, sys, time
import ray

ray.init(address=sys.argv[1], log_to_driver=False)

@ray.remote(num_cpus=0)
class Tracker:
    def __init__(self):
        self.running, self.peak, self.entered = {}, {}, 0
    def enter(self, node):
        self.entered += 1
        self.running[node] = self.running.get(node, 0) + 1
        self.peak[node] = max(self.peak.get(node, 0), self.running[node])
    def leave(self, node):
        self.running[node] -= 1
    def entered_count(self):
        return self.entered
    def peaks(self):
        return self.peak

@ray.remote(num_gpus=0.25, num_cpus=0.5)
def trial(tracker, n):
    node = ray.get_runtime_context().get_node_id()
    ray.get(tracker.enter.remote(node))
    deadline = time.time() + 90  # barrier: all trials hold their slot at once
    while ray.get(tracker.entered_count.remote()) < n and time.time() < deadline:
        time.sleep(0.2)
    ray.get(tracker.leave.remote(node))
    return node, os.environ.get("CUDA_VISIBLE_DEVICES")

n = int(sys.argv[2])
tracker = Tracker.remote()
results = ray.get([trial.remote(tracker, n) for _ in range(n)])
print("RESULT " + json.dumps({"tasks": results, "peaks": ray.get(tracker.peaks.remote())}))
"""


@pytest.fixture(scope="module")
def cluster():
    c = start_local_cluster(idle_timeout_minutes=0.1, max_workers=3)
    try:
        yield c
    finally:
        c.stop()


def test_head_only_at_start(cluster: LocalCluster):
    nodes = [n for n in cluster.nodes() if n.alive]
    assert [n.is_head for n in nodes] == [True]
    assert nodes[0].resources.get("CPU", 0) == 0
    assert cluster.num_worker_nodes() == 0
    assert cluster.address.startswith("127.0.0.1:")


def test_scales_up_from_zero_and_packs_fractional_gpus(cluster: LocalCluster):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, cluster.address, str(N_TASKS)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = 0
    while driver.poll() is None:
        seen = max(seen, cluster.num_worker_nodes())
        time.sleep(0.5)
    out = driver.stdout.read()
    assert driver.returncode == 0, out[-3000:]
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    nodes = {node for node, _ in result["tasks"]}
    assert len(nodes) >= 2, result                       # a second node joined for the demand
    assert seen >= 2
    assert cluster.num_worker_nodes() <= 3               # never above max_workers
    assert max(result["peaks"].values()) >= 2, result     # trials shared one node's GPU at once
    assert all(cvd is not None for _, cvd in result["tasks"])  # Ray assigned (fake) GPUs


def test_idle_nodes_go_back_to_zero(cluster: LocalCluster):
    assert wait_for_workers(cluster, lambda n: n == 0, timeout=90) == 0
    assert cluster.is_running()


def test_cli_status_then_down_stops_only_this_cluster(cluster: LocalCluster):
    env = {"DDRAY_LOCAL_CLUSTER_DIR": cluster.state_dir}
    runner = CliRunner()
    status = runner.invoke(cluster_app, ["local", "status"], env=env)
    assert status.exit_code == 0, status.output
    assert cluster.address in status.output and "0 worker node(s)" in status.output
    before = _cluster_pids(cluster.pid, cluster.marker)
    assert before
    down = runner.invoke(cluster_app, ["local", "down"], env=env)
    assert down.exit_code == 0 and "stopped" in down.output
    assert not cluster.is_running()
    again = runner.invoke(cluster_app, ["local", "status"], env=env)
    assert again.exit_code == 1
