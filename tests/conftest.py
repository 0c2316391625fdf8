"""Shared fixtures: a small valid spec on the embedded digits data, and one local Ray per module."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import socket
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The node cache of the tests (and of the Ray workers and `ddray` subprocesses they start): never
# the user's ~/.cache/ddray/data.
os.environ["DDRAY_CACHE_DIR"] = tempfile.mkdtemp(prefix="ddray-test-cache-")
atexit.register(shutil.rmtree, os.environ["DDRAY_CACHE_DIR"], True)
torch.set_num_threads(1)  # tiny models on 2 shared cores: more threads only contend

REPO = Path(__file__).resolve().parent.parent

# A minimal digits spec: fast enough for end-to-end tests (each trial well under a second of compute).
TINY_SPEC = {
    "name": "tiny",
    "datasets": {"digits": {}},
    "methods": {"random": {}, "herding": {}},
    "ipc": [1],
    "archs": ["convnet-d1-w16"],
    "seeds": [0],
    "protocol": "rd3",
    "overrides": {"epochs": 3, "batch_size": 16},
    "teachers": {"arch": "convnet-d1-w16"},
    "full": {"epochs": 1},
    "resources": {"default": {"cpu": 1}},
}


@pytest.fixture
def tiny_spec() -> dict:
    return copy.deepcopy(TINY_SPEC)


def planned(spec: dict, only=None):
    """The plan of a spec dict, as `ddray plan` makes it (parsed, methods resolved, planned)."""
    from ddray.plan import make_plan
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    return make_plan(resolve_methods(parse_spec(spec)), only)


def wait_for_workers(cluster, predicate: Callable[[int], bool], timeout: float = 60.0) -> int:
    """Poll a `LocalCluster`'s alive worker count until `predicate(count)` holds; the count, or
    TimeoutError (the autoscaler decides when nodes come and go: the tests can only watch)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        count = cluster.num_worker_nodes()
        if predicate(count):
            return count
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker node count stayed at {count} for {timeout:.0f} s")
        time.sleep(0.5)


def no_traceback(result) -> bool:
    """Whether a `CliRunner` result ended without a crash. The runner catches an uncaught
    exception into `result.exception` and never prints its traceback, so `"Traceback" not in
    result.output` alone cannot fail; a clean exit is no exception, or SystemExit (typer's exit)."""
    return "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))


def write_spec(path: Path, spec: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def moto_s3():
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="ddray")
    old = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    yield port, creds
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


Installer = Callable[..., Path]


@pytest.fixture
def install_dist(tmp_path, monkeypatch) -> Installer:
    """Install a tiny distribution the way pip lays one out: its modules beside a
    `<name>-<version>.dist-info` folder holding `METADATA` and `entry_points.txt`, in a folder put
    on `sys.path`. `importlib.metadata.entry_points` then finds its entry points for real.

    `install(name, {group: {entry name: "module:attr"}}, {module name: source})` returns the folder.
    Module names must be unique across the test session (`sys.modules` remembers them).
    """
    site = tmp_path / "site-packages"
    site.mkdir(exist_ok=True)

    def install(name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None) -> Path:
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{entry} = {target}\n" for entry, target in entries.items()) + "\n"
            for group, entries in entry_points.items()))
        monkeypatch.syspath_prepend(str(site))  # after writing: a changed sys.path re-reads entry points
        return site

    return install
