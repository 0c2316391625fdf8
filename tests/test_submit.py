"""`ddray submit` against a real Ray head with the Jobs API (dashboard on 127.0.0.1): the job
succeeds and its rows land in the store; submitting the same run again returns the same
submission id and runs nothing.

The head is `ray start --head --block` in a session of its own with a marker variable in its
environment, so teardown ends exactly its processes, by id (never `ray stop`: it kills every
Ray on the machine).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ddray.cluster.local import _free_ports, _kill_cluster, _ray_cli
from ddray.plan import make_plan
from ddray.spec import parse_spec
from ddray.spec_check import resolve_methods
from ddray.store import Store
from tests.conftest import REPO, TINY_SPEC, write_spec

pytest.importorskip("aiohttp", reason="ddray submit needs ray[default] (the Jobs SDK)")
MARKER_VAR = "DDRAY_TEST_SUBMIT_HEAD"


def _env(**extra: str) -> dict[str, str]:
    """Ray without token auth (Ray 2.60 turns it on when ~/.ray/auth_token exists), no usage
    stats, and this interpreter's `ddray` on PATH for the job's entrypoint."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


@pytest.fixture(scope="module")
def head():
    """A 2-CPU Ray head with the dashboard (Jobs API) on 127.0.0.1; yields its dashboard URL."""
    from ray.job_submission import JobSubmissionClient

    tmp = tempfile.mkdtemp(prefix="ddsub-")  # short: Ray's socket paths must stay under ~107 chars
    gcs, dash, agent, client = _free_ports(4)
    marker_id = uuid.uuid4().hex
    cmd = [*_ray_cli(), "start", "--head", "--block", "--num-cpus=2", "--num-gpus=0",
           "--node-ip-address=127.0.0.1", f"--port={gcs}",
           "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
           f"--temp-dir={tmp}/ray", "--disable-usage-stats"]
    log = open(Path(tmp) / "head.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_env(RAY_TMPDIR=tmp, **{MARKER_VAR: marker_id}), start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (Path(tmp) / "head.log").read_text(errors="replace")[-3000:]
            try:
                JobSubmissionClient(url).list_jobs()
                break
            except Exception:  # noqa: BLE001 — dashboard not up yet
                assert time.monotonic() < deadline, "the Ray dashboard did not come up in 90 s"
                time.sleep(0.5)
        yield url
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


def test_submit_runs_the_spec_as_a_job_once(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"random": {}}   # a synthesis stage, then its evaluations: what a job must run
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": False}]
    spec_path = write_spec(tmp_path / "tiny.yaml", spec)
    store = tmp_path / "store"
    client = JobSubmissionClient(head)

    sid = _submit(spec_path, head, store)
    assert sid.startswith("ddray-tiny-")
    assert str(client.get_job_status(sid)) in ("SUCCEEDED", "JobStatus.SUCCEEDED"), client.get_job_logs(sid)[-3000:]
    planned = make_plan(resolve_methods(parse_spec(spec))).keys()
    keys = Store(str(store)).read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(planned), client.get_job_logs(sid)[-3000:]
    mtimes = {p: p.stat().st_mtime_ns for p in (store / "rows").rglob("*.parquet")}

    again = _submit(spec_path, head, store)
    assert again == sid
    assert _jobs_of(client, sid) == [sid], "the second submit started another job"
    assert mtimes == {p: p.stat().st_mtime_ns for p in (store / "rows").rglob("*.parquet")}


def test_failed_job_exits_1_and_a_resubmit_is_a_new_attempt(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    spec_path = write_spec(tmp_path / "tiny.yaml", TINY_SPEC)
    unwritable = "/proc/ddray-no-such-store"  # `ddray run` in the job exits 2 before any work
    client = JobSubmissionClient(head)
    first = _submit(spec_path, head, unwritable, expect_rc=1)
    assert first.endswith("-1") and "not writable" in client.get_job_logs(first)
    second = _submit(spec_path, head, unwritable, wait=False)
    assert second == first[:-1] + "2"
    assert _jobs_of(client, first) == [first, second]
