"""The autoscaling pieces, without a cluster: what a cluster can ever hold (nodes now and the
node types it may add), node types read from launcher files, and the progress line that shows
nodes joining (the cluster runs are in `tests/test_autoscale.py`)."""

from __future__ import annotations

from ddray.run.capacity import Capacity, ClusterView, capacity_warnings, node_types_of_config
from ddray.run.progress import ProgressCallback, change_line, cluster_text
from tests.conftest import REPO


def test_capacity_judges_requests_against_nodes_and_addable_types():
    gpu_node = {"CPU": 2.0, "GPU": 1.0}
    quarter, two = {"CPU": 0.5, "GPU": 0.25}, {"CPU": 1.0, "GPU": 2.0}
    scaling = Capacity(nodes=({"CPU": 0.0},), node_types=({"CPU": 0.0}, gpu_node), autoscaler=True)
    assert scaling.gpus_now == 0 and scaling.may_have_gpus
    assert scaling.can_ever_fit(quarter) is True and scaling.can_ever_fit(two) is False
    assert Capacity(nodes=({"CPU": 4.0},), autoscaler=True).can_ever_fit(two) is None  # types unknown
    assert Capacity(nodes=({"CPU": 4.0},)).can_ever_fit(quarter) is False              # fixed, no GPU

    class T:
        def __init__(self, key, gpu="auto"):
            self.key, self.cpu, self.gpu, self.label = key, 0.5, gpu, f"trial-{key}"

    trials, gpus = [T("a"), T("b"), T("c", 2.0)], {"a": 0.25, "b": 0.25, "c": 2.0}
    [message] = capacity_warnings(trials, gpus, scaling)
    assert "1 trial(s)" in message and "GPU 2" in message and "trial-c" in message
    unknown = Capacity(nodes=({"CPU": 0.0},), autoscaler=True)
    [auto] = capacity_warnings(trials[:2], {"a": 0.0, "b": 0.0}, unknown)
    assert "gpu: auto" in auto
    assert capacity_warnings(trials[:2], {"a": 0.0, "b": 0.0}, Capacity(nodes=({"CPU": 4.0},))) == []


def test_node_types_are_read_from_launcher_files():
    local = node_types_of_config(REPO / "cluster" / "local-autoscale.yaml")
    assert {"CPU": 2.0, "GPU": 1.0, "object_store_memory": 268435456.0} in local
    aws = node_types_of_config(REPO / "cluster" / "aws.yaml")
    assert max(t["GPU"] for t in aws if t and "GPU" in t) == 8
    assert node_types_of_config(REPO / "cluster" / "no-such.yaml") is None


def test_progress_shows_nodes_joining_and_stays_picklable():
    import io
    import pickle

    from rich.console import Console

    views = iter([ClusterView(0, 0.0, 0), ClusterView(0, 0.0, 1), ClusterView(1, 1.0, 0), ClusterView(1, 1.0, 0)])
    sink = io.StringIO()
    bar = ProgressCallback(total=4, done=0, console=Console(file=sink, width=200), cluster_view=lambda: next(views))
    bar.set_stage("eval", 4)
    for t in range(4):
        bar.poll_cluster(now=10.0 + t)
        bar.poll_cluster(now=10.5 + t)  # within a second of the last look: not polled again
    lines = sink.getvalue()
    assert "cluster: 0 worker node(s), 1 starting, 4 trial(s) waiting for resources" in lines
    assert "cluster: 1 worker node(s) (was 0), GPU 1, 4 trial(s) waiting for resources" in lines
    assert lines.count("cluster:") == 3  # the first look, the launch and the join; no change, no line
    assert cluster_text(bar.view) == " · nodes 1 · GPU 1"
    assert change_line(None, ClusterView(2, 2.0, 0), 0) is None
    state = pickle.loads(pickle.dumps(bar))
    assert state.view == bar.view and "progress" not in state.__dict__
