"""`ddray cluster ...`: check cluster files offline, run the laptop autoscaling cluster.

Mounted by `ddray/cli.py` as `app.add_typer(cluster_app, name="cluster")`. Thin: parse, call,
print, exit code (0 ok, 2 bad input).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddray.errors import InputError

cluster_app = typer.Typer(help="Cluster files (launcher YAMLs, KubeRay) and the local autoscaling cluster.",
                          no_args_is_help=True)
local_app = typer.Typer(help="A laptop cluster that autoscales fake-GPU nodes from 0 (Ray's fake provider).",
                        no_args_is_help=True)
cluster_app.add_typer(local_app, name="local")

CLUSTER_FILE_SUFFIXES = (".yaml", ".yml")


def default_cluster_files(root: Path | None = None) -> list[Path]:
    """Every YAML under `cluster/` of the working directory, else of the ddray checkout."""
    candidates = [root] if root is not None else [
        Path.cwd() / "cluster", Path(__file__).resolve().parents[2] / "cluster"]
    for folder in candidates:
        if folder.is_dir():
            return sorted(p for p in folder.rglob("*") if p.suffix in CLUSTER_FILE_SUFFIXES)
    return []


@cluster_app.command("validate")
def validate_cmd(
    files: Optional[list[Path]] = typer.Argument(None, help="Cluster files (default: all under cluster/)."),
    crd: Optional[list[Path]] = typer.Option(
        None, "--crd", help="KubeRay CRD file(s) to check manifests against "
                            "(default: $DDRAY_KUBERAY_CRDS or ../shared/kuberay-crd/)."),
) -> None:
    """Check launcher YAMLs and KubeRay manifests offline; exit 2 listing every problem."""
    from ddray.cluster.validate import check_cluster_file

    missing = [str(p) for p in [*(files or []), *(crd or [])] if not p.exists()]
    if missing:
        for m in missing:
            typer.echo(f"{m}: no such file", err=True)
        raise typer.Exit(2)
    paths = list(files) if files else default_cluster_files()
    if not paths:
        typer.echo("cluster validate: no cluster files given and no cluster/ folder found", err=True)
        raise typer.Exit(2)
    problems: list[str] = []
    for path in paths:
        check = check_cluster_file(path, crd or None)
        problems += check.problems
        for note in check.notes:
            typer.echo(f"note: {note}", err=True)
    for p in problems:
        typer.echo(p)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"ok: {len(paths)} cluster file(s)")


@local_app.command("up")
def local_up(
    config: Optional[Path] = typer.Option(None, "--config", help="A fake_multinode launcher YAML "
                                          "(default: the built-in one, = cluster/local-autoscale.yaml)."),
    max_workers: int = typer.Option(3, help="Most worker nodes at once."),
    gpus_per_node: int = typer.Option(1, help="Fake GPUs per worker node."),
    cpus_per_node: int = typer.Option(2, help="CPUs per worker node."),
    idle_timeout_minutes: float = typer.Option(0.2, help="Idle minutes before a node goes back."),
) -> None:
    """Start the laptop cluster and print the address to run against."""
    from ddray.cluster.local import LocalCluster, default_state_dir, start_local_cluster

    sdir = default_state_dir()
    running = LocalCluster.load(sdir)
    if running is not None and running.is_running():
        typer.echo(f"already running: {running.address}")
        _print_usage(running)
        return
    kwargs = ({"config": config} if config is not None else dict(
        max_workers=max_workers, gpus_per_node=gpus_per_node, cpus_per_node=cpus_per_node,
        idle_timeout_minutes=idle_timeout_minutes))
    try:
        cluster = start_local_cluster(state_dir=sdir, **kwargs)
    except InputError as e:
        for p in e.problems:
            typer.echo(p, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"local cluster up: {cluster.address} (0 worker nodes until work arrives)")
    _print_usage(cluster)


def _print_usage(cluster) -> None:
    typer.echo(f"  ddray run SPEC --address {cluster.address}")
    if cluster.dashboard_url:
        typer.echo(f"  ddray submit SPEC --address {cluster.dashboard_url}")
    typer.echo("  ddray cluster local status | ddray cluster local down")


@local_app.command("down")
def local_down() -> None:
    """Stop the laptop cluster (only its own processes)."""
    from ddray.cluster.local import stop_local_cluster

    stopped = stop_local_cluster()
    typer.echo(f"stopped {stopped.address}" if stopped else "no local cluster is running")


@local_app.command("status")
def local_status() -> None:
    """Show the laptop cluster's nodes and their resources."""
    from ddray.cluster.local import LocalCluster, default_state_dir

    cluster = LocalCluster.load(default_state_dir())
    if cluster is None or not cluster.is_running():
        typer.echo("no local cluster is running (ddray cluster local up)")
        raise typer.Exit(1)
    nodes = [n for n in cluster.nodes() if n.alive]
    workers = [n for n in nodes if not n.is_head]
    typer.echo(f"address {cluster.address}: {len(workers)} worker node(s)")
    for n in sorted(nodes, key=lambda n: (not n.is_head, n.node_id)):
        extra = {k: v for k, v in n.resources.items()
                 if k not in ("CPU", "GPU") and not k.startswith(("node:", "object_store", "memory"))}
        shown = {"CPU": n.resources.get("CPU", 0), "GPU": n.resources.get("GPU", 0), **extra}
        res = ", ".join(f"{k} {v:g}" for k, v in shown.items())
        typer.echo(f"  {'head  ' if n.is_head else 'worker'} {n.node_id[-8:]}  {res}")
