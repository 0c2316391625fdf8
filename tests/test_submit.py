"""`ddray submit` against a real Ray head with the Jobs API (dashboard on 127.0.0.1): the job
succeeds and its rows land in the store; submitting the same run again returns the same
submission id and runs nothing.

The head runs on an interpreter that has Ray, torch and ddray's other dependencies but no ddray
(and a PATH and working directory that lead to none), as a cluster node built from the Ray image
has: every job here runs only because it brings ddray in its runtime env (py_modules), and the
job log shows that ddray was imported from the package Ray unpacked for it.

The head is `ray start --head --block` in a session of its own with a marker variable in its
environment, so teardown ends exactly its processes, by id (never `ray stop`: it kills every
Ray on the machine).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ddray.cluster.local import _free_ports, _kill_cluster
from ddray.plan import make_plan
from ddray.spec import parse_spec
from ddray.spec_check import resolve_methods
from ddray.store import Store
from tests.conftest import REPO, TINY_SPEC, write_spec

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`

pytest.importorskip("aiohttp", reason="ddray submit needs ray[default] (the Jobs SDK)")
MARKER_VAR = "DDRAY_TEST_SUBMIT_HEAD"
TEST_BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    """The submitter's environment: Ray without token auth (Ray 2.60 turns it on when
    ~/.ray/auth_token exists), no usage stats, and this checkout's ddray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO), **extra)
    return env


def _node_env(python: Path, **extra: str) -> dict[str, str]:
    """The head's environment: `python` is the node interpreter (a job's entrypoint resolves it
    on PATH), and neither PYTHONPATH nor PATH leads to this checkout or the test venv's ddray."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH", "VIRTUAL_ENV")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != TEST_BIN]
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PATH=os.pathsep.join([str(python.parent), *path]), **extra)
    return env


def _node_python(root: Path) -> Path:
    """A Python with this venv's packages (Ray, torch, ...) but without ddray.

    A venv whose site-packages holds one .pth file naming this venv's site-packages: a .pth line
    puts a folder on sys.path but does not run the .pth files in it, and one of those is the
    import hook of the test venv's editable ddray install, which therefore never loads.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "test-venv-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    probe = subprocess.run([python, "-c", "import ray, torch, typer, pyarrow; import ddray"], cwd=root,
                           env=_node_env(python), capture_output=True, text=True)
    assert "No module named 'ddray'" in probe.stderr, probe.stderr[-2000:]
    return python


@dataclass(frozen=True)
class Head:
    url: str        # the dashboard (Jobs API)
    temp_dir: Path  # Ray's --temp-dir: runtime envs are unpacked under it


@pytest.fixture(scope="module")
def head():
    """A 2-CPU Ray head with the dashboard (Jobs API) on 127.0.0.1, on a node Python without ddray."""
    from ray.job_submission import JobSubmissionClient

    tmp = Path(tempfile.mkdtemp(prefix="ddsub-"))  # short: Ray's socket paths must stay under ~107 chars
    python = _node_python(tmp / "node")
    gcs, dash, agent, client = _free_ports(4)
    marker_id = uuid.uuid4().hex
    cmd = [str(python), "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0",
           "--node-ip-address=127.0.0.1", f"--port={gcs}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
           f"--temp-dir={tmp}/ray", "--disable-usage-stats"]
    log = open(tmp / "head.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp,
                            env=_node_env(python, RAY_TMPDIR=str(tmp), **{MARKER_VAR: marker_id}),
                            start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp / "head.log").read_text(errors="replace")[-3000:]
            try:
                JobSubmissionClient(url).list_jobs()
                break
            except Exception:  # noqa: BLE001 — dashboard not up yet
                assert time.monotonic() < deadline, "the Ray dashboard did not come up in 90 s"
                time.sleep(0.5)
        yield Head(url, tmp / "ray")
    finally:
        _kill_cluster(proc.pid, f"{MARKER_VAR}={marker_id}", grace=2.0)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _submit(spec_path: Path, url: str, store: Path | str, expect_rc: int = 0, wait: bool = True) -> str:
    """`ddray submit SPEC [--wait]`; its submission id."""
    done = subprocess.run([sys.executable, "-m", "ddray.cli", "submit", str(spec_path), "--address", url,
                           "--store", str(store), "--wait" if wait else "--no-wait"],
                          env=_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == expect_rc, done.stdout + done.stderr
    found = re.search(r"submitted (\S+);", done.stdout)
    assert found, done.stdout
    return found.group(1)


def _jobs_of(client, sid: str) -> list[str]:
    """Submission ids of every attempt of the run `sid` belongs to (same spec, store, args)."""
    run = sid.rsplit("-", 1)[0] + "-"
    return sorted(j.submission_id for j in client.list_jobs() if (j.submission_id or "").startswith(run))


def _assert_ran_the_ddray_it_brought(client, sid: str, head: Head) -> None:
    """The job's runtime env carries one package in py_modules (and the spec folder), and the job
    imported ddray from the folder Ray unpacked that package into: this checkout's modules."""
    import ddray

    info = client.get_job_info(sid)
    assert info.entrypoint.startswith("python -m ddray.cluster.job run "), info.entrypoint
    [uri] = info.runtime_env["py_modules"]
    package = re.fullmatch(r"gcs://(_ray_pkg_[0-9a-f]+)\.zip", uri)
    assert package, uri
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")
    assert not {"pip", "conda", "uv"} & set(info.runtime_env)
    logs = client.get_job_logs(sid)
    found = re.search(r"^ddray (\S+) from (.+)$", logs, re.M)
    assert found, logs[-3000:]
    where = Path(found.group(2))
    assert found.group(1) == ddray.__version__
    assert where.name == "ddray" and where.parent.name == package.group(1)
    assert (where.parent.parent.name, where.parent.parent.parent.name) == ("py_modules_files", "runtime_resources")
    assert where.is_relative_to(head.temp_dir.resolve())
    shipped = REPO / "ddray"  # what `_submit` runs: `ddray submit` with PYTHONPATH=REPO
    assert ({p.relative_to(where) for p in where.rglob("*.py")}
            == {p.relative_to(shipped) for p in shipped.rglob("*.py")})


def test_submit_runs_the_spec_as_a_job_once(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"random": {}}   # a synthesis stage, then its evaluations: what a job must run
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": False}]
    spec_path = write_spec(tmp_path / "tiny.yaml", spec)
    store = tmp_path / "store"
    client = JobSubmissionClient(head.url)

    sid = _submit(spec_path, head.url, store)
    assert sid.startswith("ddray-tiny-")
    assert str(client.get_job_status(sid)) in ("SUCCEEDED", "JobStatus.SUCCEEDED"), client.get_job_logs(sid)[-3000:]
    _assert_ran_the_ddray_it_brought(client, sid, head)
    planned = make_plan(resolve_methods(parse_spec(spec))).keys()
    keys = Store(str(store)).read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(planned), client.get_job_logs(sid)[-3000:]
    mtimes = {p: p.stat().st_mtime_ns for p in (store / "rows").rglob("*.parquet")}

    again = _submit(spec_path, head.url, store)
    assert again == sid
    assert _jobs_of(client, sid) == [sid], "the second submit started another job"
    assert mtimes == {p: p.stat().st_mtime_ns for p in (store / "rows").rglob("*.parquet")}


def test_failed_job_exits_1_and_a_resubmit_is_a_new_attempt(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    spec_path = write_spec(tmp_path / "tiny.yaml", TINY_SPEC)
    unwritable = "/proc/ddray-no-such-store"  # `ddray run` in the job exits 2 before any work
    client = JobSubmissionClient(head.url)
    first = _submit(spec_path, head.url, unwritable, expect_rc=1)
    assert first.endswith("-1") and "not writable" in client.get_job_logs(first)
    second = _submit(spec_path, head.url, unwritable, wait=False)
    assert second == first[:-1] + "2"
    assert _jobs_of(client, first) == [first, second]
