"""A laptop autoscaling cluster: Ray's fake multi-node provider on one machine.

Why: autoscaling (pending trials' placement groups as demand, nodes from 0 and back to 0) is
the part of a cloud run that is hardest to see before paying for it. Ray's `fake_multinode`
provider starts worker "nodes" as extra raylets on this machine, each advertising fake GPUs, so
`ddray run --address ...` against it behaves like a cloud cluster that scales.

How (Ray 2.60 facts): `ray.cluster_utils.AutoscalingCluster` is broken (its `example.yaml` is
not in the wheel) and `ray stop --force` kills every Ray process of the machine. So the head is
started here as `RAY_FAKE_CLUSTER=1 ray start --head --block` in a new session with a marker
variable in its environment: the GCS, the autoscaler and the fake nodes' raylets share that
process group, the workers (each in a group of its own) inherit the marker, and `stop()` ends
exactly those processes, by id. The provider reads the config file raw (no defaults are filled
in), so the config carries every field, and `provider.gcs_address` points the fake nodes at this
head's port instead of 6379.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ddray.errors import InputError
from ddray.yaml_strict import read_yaml_file

# The fake provider gives the head this id and numbers worker ids after it.
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"
HEAD_NODE_TYPE = "ray.head.default"
WORKER_NODE_TYPE = "gpu_worker"
STATE_FILE = "state.json"
MARKER_VAR = "DDRAY_LOCAL_CLUSTER_ID"   # inherited by every process of one local cluster
MB = 1024 * 1024


def local_config(
    *,
    max_workers: int = 3,
    cpus_per_node: int = 2,
    gpus_per_node: int = 1,
    idle_timeout_minutes: float = 0.2,
    object_store_mb: int = 256,
) -> dict[str, Any]:
    """The autoscaling config of the laptop cluster (the content of cluster/local-autoscale.yaml).

    Head: no CPU, so work lands on workers as on a cloud cluster. One worker type with fake GPUs
    from 0 nodes; `idle_timeout_minutes` is a float, so a few seconds work for a demo.
    """
    return {
        "cluster_name": "ddray-local",
        "max_workers": max_workers,
        "upscaling_speed": float(max_workers),
        "idle_timeout_minutes": idle_timeout_minutes,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            # One call launches `count` nodes; without it the provider makes one per round.
            "launch_multiple": True,
        },
        "available_node_types": {
            HEAD_NODE_TYPE: {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER_NODE_TYPE: {
                "resources": {
                    "CPU": cpus_per_node,
                    "GPU": gpus_per_node,
                    "object_store_memory": object_store_mb * MB,
                },
                "node_config": {},
                "min_workers": 0,
                "max_workers": max_workers,
            },
        },
        "head_node_type": HEAD_NODE_TYPE,
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@dataclass
class NodeInfo:
    node_id: str
    alive: bool
    is_head: bool
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class LocalCluster:
    """A running laptop cluster; `address` is what `ddray run --address` and `ray.init` take."""

    address: str
    dashboard_url: str | None
    pid: int
    state_dir: str
    config_path: str
    log_path: str
    ray_temp_dir: str
    marker: str
    owns_state_dir: bool = False

    # ---- nodes -------------------------------------------------------------------------------
    def nodes(self, timeout: float = 5.0) -> list[NodeInfo]:
        """Every node the GCS knows (dead ones included), read without connecting a driver."""
        from ray._raylet import GcsClient

        infos = GcsClient(address=self.address).get_all_node_info(timeout=timeout)
        out = []
        for info in infos.values():
            node_id = info.node_id.hex()
            out.append(NodeInfo(
                node_id=node_id,
                alive=info.state == 0,  # GcsNodeInfo.ALIVE
                is_head=node_id == FAKE_HEAD_NODE_ID,
                resources=dict(info.resources_total),
            ))
        return out

    def num_worker_nodes(self) -> int:
        return sum(1 for n in self.nodes() if n.alive and not n.is_head)

    # ---- lifecycle ---------------------------------------------------------------------------
    def is_running(self) -> bool:
        return bool(_cluster_pids(self.pid, self.marker))

    def stop(self, grace: float = 2.0) -> None:
        """End this cluster's process group (never any other Ray on the machine)."""
        _kill_cluster(self.pid, self.marker, grace)
        shutil.rmtree(self.ray_temp_dir, ignore_errors=True)
        state = Path(self.state_dir) / STATE_FILE
        if state.exists():
            state.unlink()
        if self.owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def save(self) -> None:
        (Path(self.state_dir) / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> LocalCluster | None:
        """The cluster recorded in `state_dir`, or None when none was started there."""
        path = Path(state_dir) / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def default_state_dir() -> Path:
    """Where `ddray cluster local up/down/status` remember the cluster (one per user)."""
    env = os.environ.get("DDRAY_LOCAL_CLUSTER_DIR")
    if env:
        return Path(env)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"ddray-local-{uid}"


def start_local_cluster(
    *,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    include_dashboard: bool | None = None,
    head_object_store_mb: int = 128,
    timeout: float = 60.0,
    **config_overrides: Any,
) -> LocalCluster:
    """Start a fake-GPU autoscaling cluster on this machine and return once the head is up.

    `config`: a launcher YAML (path) or dict with `provider.type: fake_multinode`; default
    `local_config(**config_overrides)`. `state_dir`: where config, state and the head's log
    go; default a fresh temporary folder, removed by `stop()`. `include_dashboard`: None lets
    Ray decide (a minimal dashboard without `ray[default]`); `dashboard_url` is set only when
    the Jobs API (`ddray submit`) can answer on it.
    """
    cfg = _load_config(config, config_overrides)
    owns = state_dir is None
    sdir = Path(tempfile.mkdtemp(prefix="ddray-lc-")) if owns else Path(state_dir)
    sdir.mkdir(parents=True, exist_ok=True)
    existing = LocalCluster.load(sdir)
    if existing is not None and existing.is_running():
        raise InputError(f"a local cluster is already running at {existing.address} "
                         f"(state in {sdir}); stop it first", path="cluster local up")

    gcs_port, dash_port, agent_port = _free_ports(3)
    cfg["provider"]["gcs_address"] = f"127.0.0.1:{gcs_port}"
    config_path = sdir / "autoscale.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    log_path = sdir / "head.log"
    # Ray's unix sockets live under the temp dir; keep it short (socket paths max ~107 chars).
    temp_dir = Path(tempfile.mkdtemp(prefix="ddray-ray-"))

    cmd = _head_command(gcs_port, dash_port, agent_port, include_dashboard, head_object_store_mb * MB,
                        temp_dir, config_path)
    cluster_id = uuid.uuid4().hex
    marker = f"{MARKER_VAR}={cluster_id}"  # as it appears in /proc/PID/environ
    env = _head_env(cluster_id)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    cluster = LocalCluster(
        address=f"127.0.0.1:{gcs_port}",
        dashboard_url=f"http://127.0.0.1:{dash_port}" if _has_job_api(include_dashboard) else None,
        pid=proc.pid, state_dir=str(sdir), config_path=str(config_path),
        log_path=str(log_path), ray_temp_dir=str(temp_dir), marker=marker, owns_state_dir=owns,
    )
    cluster.save()
    try:
        _wait_for_head(cluster, proc, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _head_command(gcs_port: int, dash_port: int, agent_port: int, include_dashboard: bool | None,
                  object_store_bytes: int, temp_dir: Path, config_path: Path) -> list[str]:
    """`ray start --head` of a local autoscaling cluster: no CPUs or GPUs on the head (trials
    go to the fake worker nodes), every port chosen here, the launcher YAML as its autoscaler."""
    return [
        *_ray_cli(), "start", "--head", "--block",
        "--num-cpus=0", "--num-gpus=0",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs_port}",
        *([] if include_dashboard is None
          else [f"--include-dashboard={'true' if include_dashboard else 'false'}"]),
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
        f"--dashboard-agent-listen-port={agent_port}",
        "--min-worker-port=0", "--max-worker-port=0",
        f"--object-store-memory={object_store_bytes}",
        f"--temp-dir={temp_dir}",
        f"--autoscaling-config={config_path}",
        "--disable-usage-stats",
    ]


def _head_env(cluster_id: str) -> dict[str, str]:
    """The head's environment: marked with `cluster_id` (so `stop` finds its processes), no
    inherited Ray address."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env[MARKER_VAR] = cluster_id
    # The fake provider refuses to run without RAY_FAKE_CLUSTER; a 1 s autoscaler loop makes
    # scale-up and idle release follow the demand within seconds instead of 5 s rounds.
    env.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                "RAY_USAGE_STATS_ENABLED": "0"})
    # Ray 2.60 turns token auth on when ~/.ray/auth_token exists (any earlier local ray.init
    # writes one), and then drivers without RAY_AUTH_MODE=token are refused. A throwaway
    # laptop cluster behaves the same on every machine: no token (README says so).
    env["RAY_AUTH_MODE"] = "disabled"
    return env


def stop_local_cluster(state_dir: str | os.PathLike[str] | None = None) -> LocalCluster | None:
    """Stop the cluster recorded in `state_dir` (default: the CLI's); the one stopped, or None."""
    sdir = Path(state_dir) if state_dir is not None else default_state_dir()
    cluster = LocalCluster.load(sdir)
    if cluster is None:
        return None
    cluster.stop()
    return cluster


# ---- helpers -------------------------------------------------------------------------------
def _load_config(config: str | os.PathLike[str] | dict[str, Any] | None,
                 overrides: dict[str, Any]) -> dict[str, Any]:
    if config is None:
        return local_config(**overrides)
    if overrides:
        raise TypeError("pass either a config or local_config() overrides, not both")
    if isinstance(config, dict):
        cfg = copy.deepcopy(config)
    else:
        path = Path(config)
        if not path.exists():
            raise InputError(f"no such file: {path}", path="config")
        _, cfg = read_yaml_file(path)
    if not isinstance(cfg, dict) or (cfg.get("provider") or {}).get("type") != "fake_multinode":
        raise InputError("provider.type: the local cluster needs 'fake_multinode'", path=str(config))
    return cfg


def _ray_cli() -> list[str]:
    """The `ray` CLI of this interpreter (never whatever `ray` is first on PATH)."""
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


def _has_job_api(include_dashboard: bool | None) -> bool:
    """Ray Jobs need the full dashboard (`ray[default]`); `ray[tune]` alone starts a minimal one."""
    if include_dashboard is False:
        return False
    from ray._private.utils import get_dashboard_dependency_error

    return get_dashboard_dependency_error() is None


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_for_head(cluster: LocalCluster, proc: subprocess.Popen, timeout: float) -> None:
    """Block until the GCS answers and the head raylet has registered."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(cluster.log_path).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ray start exited with {proc.returncode}; log tail:\n{tail}")
        try:
            if any(n.is_head and n.alive for n in cluster.nodes(timeout=2)):
                return
        except Exception as e:  # GCS not up yet
            last_error = e
        time.sleep(0.5)
    tail = Path(cluster.log_path).read_text(errors="replace")[-3000:]
    raise TimeoutError(f"local Ray head did not come up in {timeout:.0f} s ({last_error}); "
                       f"log tail:\n{tail}")


def _cluster_pids(pgid: int, marker: str) -> list[int]:
    """Live (non-zombie) processes of this cluster: its process group, plus the Ray workers.

    Raylets put each worker in a process group of its own, so the group alone misses them; every
    process of the cluster inherits the marker variable, which no other process carries.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: the group leader is all we can see
        return [pgid] if _pid_alive(pgid) else []
    needle = marker.encode() + b"\0"
    found = []
    for p in proc.iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            fields = stat[stat.rfind(")") + 2:].split()
            if not fields or fields[0] == "Z":
                continue
            if int(fields[2]) == pgid or needle in (p / "environ").read_bytes() + b"\0":
                found.append(int(p.name))
        except (OSError, ValueError):
            continue
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_cluster(pgid: int, marker: str, grace: float) -> None:
    """SIGTERM the cluster's processes, then SIGKILL what is left (`ray start --block` would
    otherwise drain for 30 s)."""
    pids = _cluster_pids(pgid, marker)
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.2)
        pids = _cluster_pids(pgid, marker)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        _signal_all(pids, signal.SIGKILL)
        _reap(pgid)
        time.sleep(0.2)
        pids = _cluster_pids(pgid, marker)


def _reap(pid: int) -> None:
    """Collect the group leader when this process started it (avoids a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
