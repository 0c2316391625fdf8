"""Kill a `ddray run` driver with SIGKILL mid-run, run it again, and check the store: nothing
finished is lost, nothing stored is recomputed or rewritten, every planned trial is stored once.

Shared by the quickstart's end-to-end test (a local folder: the run a user kills and restarts)
and the fault tests (an s3:// store on a local moto server)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from ddray.store import Store
from tests.conftest import REPO

DDRAY = [sys.executable, "-m", "ddray.cli"]


def small_quickstart(folder: Path) -> str:
    """specs/quickstart.yaml with every count of work cut to the least that still trains (2
    epochs, 2 synthesis iterations, 1 full-data epoch): the same methods, arms, stages, seeds and
    IPCs, so a slice of it shows what the whole spec does at a fraction of the time. The shipped
    spec's own keys are checked by `tests/test_keys_golden.py`."""
    from ddray.yaml_strict import read_yaml_file

    _, spec = read_yaml_file(REPO / "specs/quickstart.yaml")
    spec["overrides"]["epochs"] = 2
    spec["full"]["epochs"] = 1
    for method in ("dm", "sre2l"):
        spec["methods"][method]["iterations"] = 2
    path = Path(folder) / "quickstart-small.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without a Ray address (each run starts its own local Ray)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def session_processes(sid: int) -> list[int]:
    """PIDs of the live processes in session `sid` (the killed driver's, with Ray's processes)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(d.name))
    return out


# Ray's per-node agents: they run no trial code, and once their raylet is gone they wait about a
# minute for it to come back before they exit.
AGENTS = (b"ray::DashboardAgent", b"ray::RuntimeEnvAgent")


def _is_agent(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(AGENTS)
    except OSError:
        return False


def wait_until_gone(sid: int, timeout: float = 120.0) -> None:
    """A barrier instead of a guessed sleep: every process of the killed run that could write to
    the store (its workers, its raylet) has exited; then the agents left waiting for their raylet
    are killed too, rather than waited for, and the run's session is empty."""
    deadline = time.time() + timeout
    while (left := session_processes(sid)) and time.time() < deadline:
        if all(_is_agent(pid) for pid in left):
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    assert not left, f"processes of the killed run are still alive: {left}"


def stored_rows(store: Store) -> dict[str, bytes]:
    """Every stored row's bytes by key: a rewrite shows even when the numbers are the same."""
    out = {}
    for stage, keys in store.done_keys().items():
        for k in keys:
            with store.loc.fs.open_input_stream(store.row_path(stage, k)) as f:
                out[k] = f.read()
    return out


def planned_keys(spec: str, args: list[str], env: dict[str, str]) -> set[str]:
    out = subprocess.check_output([*DDRAY, "plan", spec, "--json", *args], env=env, cwd=REPO)
    return {t["key"] for t in json.loads(out)["trials"]}


def kill_then_resume(spec: str, uri: str, args: list[str], env: dict[str, str], kill_after: int = 6) -> None:
    """Runs `ddray run spec --store uri *args`, kills its driver once `kill_after` rows are
    stored, runs it again to the end, and asserts what a killed run promises."""
    store = Store(uri)
    cmd = [*DDRAY, "run", spec, "--store", uri, *args, "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and len(stored_rows(store)) < kill_after:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)          # the driver only: Ray's reaper takes its workers down
    proc.wait()
    wait_until_gone(proc.pid)
    before = stored_rows(store)
    planned = planned_keys(spec, args, env)
    assert kill_after <= len(before) < len(planned)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    after = stored_rows(store)
    assert set(after) == planned
    assert all(after[k] == v for k, v in before.items()), "a row stored before the kill was rewritten"
    keys = store.read_table().column("key").to_pylist()
    assert sorted(keys) == sorted(planned), "a trial was stored twice"
