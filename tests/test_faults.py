"""Driver killed with SIGKILL mid-run (local folder and s3:// on a local moto server): nothing
finished is lost, nothing stored is recomputed or rewritten, the rerun completes the plan."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddray.store import Store
from tests.conftest import REPO

DDRAY = [sys.executable, "-m", "ddray.cli"]
SLICE = ["--only", "seed=0", "--only", "ipc=1"]   # a real slice of the quickstart: same keys as the full run


def _planned(env) -> set[str]:
    out = subprocess.check_output([*DDRAY, "plan", str(REPO / "specs/quickstart.yaml"), "--json", *SLICE], env=env, cwd=REPO)
    return {t["key"] for t in json.loads(out)["trials"]}


def _rows(store: Store) -> dict[str, bytes]:
    out = {}
    for stage, keys in store.done_keys().items():
        for k in keys:
            with store.loc.fs.open_input_stream(store.row_path(stage, k)) as f:
                out[k] = f.read()
    return out


def _kill_then_resume(uri: str, env: dict[str, str]) -> None:
    store = Store(uri)
    cmd = [*DDRAY, "run", str(REPO / "specs/quickstart.yaml"), "--store", uri, *SLICE, "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(_rows(store)) < 6:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)          # the driver only: Ray's reaper takes its workers down
    proc.wait()
    time.sleep(3)
    before = _rows(store)
    planned = _planned(env)
    assert 6 <= len(before) < len(planned)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _rows(store)
    assert set(after) == planned
    assert all(after[k] == v for k, v in before.items()), "a row stored before the kill was rewritten"
    keys = store.read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(planned), "a trial was stored twice"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def test_sigkill_local_store(tmp_path):
    _kill_then_resume(str(tmp_path / "store"), _env())


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


def test_sigkill_s3_store(moto_s3):
    port, creds = moto_s3
    uri = f"s3://ddray/quickstart?endpoint_override=127.0.0.1:{port}&scheme=http"
    _kill_then_resume(uri, _env(**creds))
    rows = Store(uri).read_rows()
    assert {"full", "synth", "eval"} <= set(rows["stage"])
