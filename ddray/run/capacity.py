"""What a Ray cluster has now, and what its autoscaler could add: the runner's answer to
"will these trials ever start?".

Why: on an autoscaling cluster GPU workers start from 0, so "the cluster has no GPUs" is normal
and trials that ask for GPUs must wait (their pending placement groups are the autoscaler's
demand). Only a request that *no* node, present or addable, can hold will wait forever; that one
deserves a warning. Ray 2.60 does not publish the v1 autoscaler's node types to drivers, so they
are read, best effort, from where they can be found offline:

1. the cluster config in the GCS (what autoscaler v2 / managed platforms report);
2. the `--autoscaling-config` YAML of the autoscaler process, when it runs on this machine (a
   launcher cluster's head, where `ddray submit` runs drivers, and the laptop cluster);
3. otherwise the autoscaler's status in the GCS says only *that* one runs; the node types stay
   unknown and nothing is judged infeasible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTOSCALING_STATUS_KEY = "__autoscaling_status"   # ray._private.ray_constants.DEBUG_AUTOSCALING_STATUS
HEAD_RESOURCE = "node:__internal_head__"
_READONLY_TYPE = re.compile(r"^node_[0-9a-f]{56}$")  # the read-only provider's names (no autoscaler)

Bundle = Mapping[str, float]  # one placement-group bundle, or a node's resources


@dataclass(frozen=True)
class Capacity:
    """The nodes now, and the node types an autoscaler may add.

    `node_types`: resources of each addable type (`None` for a type whose resources Ray detects at
    boot); the whole list is `None` when the types are unknown. `autoscaler`: one is running.
    """

    nodes: tuple[dict[str, float], ...] = ()
    node_types: tuple[dict[str, float] | None, ...] | None = None
    autoscaler: bool = False

    @property
    def gpus_now(self) -> float:
        return sum(n.get("GPU", 0.0) for n in self.nodes)

    @property
    def may_have_gpus(self) -> bool:
        """GPUs now, or a node type with GPUs the autoscaler can add."""
        return self.gpus_now > 0 or any(t and t.get("GPU", 0) > 0 for t in self.node_types or ())

    def can_ever_fit(self, bundle: Bundle) -> bool | None:
        """True/False when known; None when an autoscaler adds node types ddray cannot see."""
        if any(fits(bundle, n) for n in self.nodes):
            return True
        if not self.autoscaler:
            return False
        if self.node_types is None or any(t is None for t in self.node_types):
            return None
        return any(fits(bundle, t) for t in self.node_types if t is not None)


@dataclass
class ClusterView:
    """One cheap look at the cluster for the progress display."""

    workers: int = 0                 # alive nodes other than the head
    gpus: float = 0.0
    starting: int = 0                # nodes the autoscaler is launching


def fits(bundle: Bundle, node: Bundle) -> bool:
    """Whether one placement-group bundle fits one node's total resources."""
    return all(node.get(k, 0.0) >= v for k, v in bundle.items() if v > 0)


def trial_bundle(cpu: float, gpu: float) -> dict[str, float]:
    """The single bundle the runner asks for (runner._tune_stage builds the same)."""
    return {"CPU": float(cpu), **({"GPU": float(gpu)} if gpu else {})}


def infeasible_messages(requests: Iterable[tuple[Bundle, str]], cap: Capacity) -> list[str]:
    """One warning per distinct request that no node now or later can hold (`(bundle, label)` pairs)."""
    seen: dict[tuple, list[str]] = {}
    for bundle, label in requests:
        key = tuple(sorted((k, v) for k, v in bundle.items() if v > 0))
        seen.setdefault(key, []).append(label)
    out = []
    for key, labels in seen.items():
        bundle = dict(key)
        if cap.can_ever_fit(bundle) is not False:
            continue
        asked = ", ".join(f"{k} {v:g}" for k, v in key)
        where = "any node type its autoscaler can add" if cap.autoscaler else "any of its nodes (no autoscaler)"
        largest = _largest(list(cap.nodes) + [t for t in cap.node_types or () if t])
        out.append(f"{len(labels)} trial(s) ask for {{{asked}}} per trial (e.g. {labels[0]}), more than "
                   f"{where} has ({largest}): they will wait and never start. Lower `resources:` in the spec, "
                   "or add a node type that fits.")
    return out


def capacity_warnings(trials: Iterable[Any], gpus: Mapping[str, float], cap: Capacity) -> list[str]:
    """What the runner says once before running `trials` (plan Trials; `gpus`: their resolved GPU fractions)."""
    trials = list(trials)
    out = infeasible_messages(((trial_bundle(t.cpu, gpus[t.key]), t.label) for t in trials), cap)
    if cap.autoscaler and cap.node_types is None and not cap.may_have_gpus and any(t.gpu == "auto" for t in trials):
        out.append("`gpu: auto` means no GPU here: this cluster has no GPU now, and the node types its autoscaler "
                   "can add are not visible from this driver. To train on GPU workers that are still to come, "
                   "set the fraction in the spec (`resources: {ARCH: {cpu: C, gpu: G}}`).")
    return out


def _largest(nodes: list[Bundle]) -> str:
    if not nodes:
        return "no nodes"
    cpu = max(n.get("CPU", 0.0) for n in nodes)
    gpu = max(n.get("GPU", 0.0) for n in nodes)
    return f"at most CPU {cpu:g}, GPU {gpu:g} on one node"


# ---- reading the cluster (needs a connected driver) ---------------------------------------------
def read_capacity() -> Capacity:
    """Nodes now plus the autoscaler's node types, from the connected Ray driver; never raises."""
    import ray

    nodes = tuple(_clean(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive"))
    status = _autoscaler_status()
    types = _types_from_gcs_config()
    if types is None and status is not None:
        types = _types_from_monitor(status.get("monitor_pid"))
    autoscaler = types is not None or _is_real_autoscaler(status)
    return Capacity(nodes=nodes, node_types=types, autoscaler=autoscaler)


def read_view() -> ClusterView:
    """Alive worker nodes, their GPUs, and nodes being launched: one GCS call and one KV read."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    workers = [n for n in alive if HEAD_RESOURCE not in n.get("Resources", {})]
    status = _autoscaler_status() or {}
    report = status.get("autoscaler_report") or {}
    starting = len(report.get("pending_nodes") or []) + sum((report.get("pending_launches") or {}).values())
    return ClusterView(workers=len(workers), gpus=sum(n.get("Resources", {}).get("GPU", 0.0) for n in alive),
                       starting=starting)


def _clean(res: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in res.items() if not k.startswith("node:") or k == HEAD_RESOURCE}


def _autoscaler_status() -> dict[str, Any] | None:
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(AUTOSCALING_STATUS_KEY)
        return json.loads(raw) if raw else None
    except Exception:  # noqa: BLE001 — a display aid: an unreadable status means "unknown"
        return None


def _is_real_autoscaler(status: dict[str, Any] | None) -> bool:
    """A monitor runs on every head; with no autoscaling config it names node types after node ids."""
    if not status:
        return False
    report = status.get("autoscaler_report") or {}
    names = set((report.get("node_type_mapping") or {}).values()) | set(report.get("active_nodes") or {})
    return bool(report.get("pending_launches") or report.get("pending_nodes")) or any(
        not _READONLY_TYPE.match(n) for n in names)


def _types_from_gcs_config() -> tuple[dict[str, float] | None, ...] | None:
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # noqa: BLE001
        return None
    if config is None or not config.node_group_configs:
        return None
    return tuple({k: float(v) for k, v in g.resources.items()} for g in config.node_group_configs if g.max_count != 0)


def _types_from_monitor(pid: Any) -> tuple[dict[str, float] | None, ...] | None:
    """The node types of the launcher YAML the autoscaler process was started with, if on this machine."""
    try:
        argv = Path(f"/proc/{int(pid)}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, TypeError, ValueError):
        return None
    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--autoscaling-config=")), None)
    if path is None and "--autoscaling-config" in argv:
        i = argv.index("--autoscaling-config")
        path = argv[i + 1] if i + 1 < len(argv) else None
    return node_types_of_config(path) if path else None


def node_types_of_config(path: str | Path) -> tuple[dict[str, float] | None, ...] | None:
    """Addable node types of a launcher YAML: resources of each type with workers (None = detected at boot)."""
    import yaml

    from ddray.yaml_strict import load

    try:
        cfg = load(Path(path).expanduser().read_text())
    except (OSError, yaml.YAMLError):
        return None
    types = (cfg or {}).get("available_node_types") if isinstance(cfg, dict) else None
    if not isinstance(types, dict):
        return None
    head = cfg.get("head_node_type")
    out: list[dict[str, float] | None] = []
    for name, t in types.items():
        t = t or {}
        if name != head and t.get("max_workers", cfg.get("max_workers", 1)) == 0:
            continue
        res = t.get("resources")
        out.append({k: float(v) for k, v in res.items()} if isinstance(res, dict) and res else None)
    return tuple(out)
