"""End to end, as a user runs it: the quickstart spec through `ddray run`, a no-op rerun, the report.

The tests run the seed-0, IPC-1 slice (`--only seed=0 --only ipc=1`) of the quickstart with its
epochs and synthesis iterations cut to 2 (`tests.sigkill.small_quickstart`): every method, arm
and stage of the quickstart, 24 of its 136 trials, so the suite stays inside its budget on a 2-core
CPU (IPC 10 and 100 epochs differ only in a number; the engine and synthesizer tests train at IPC
10). `make demo` runs the whole spec. The slice's first run is killed mid-way and resumed, which is
also the fault test on a local store (the s3:// one is in `tests/test_faults.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ddray.store import Store
from tests.conftest import REPO
from tests.sigkill import clean_env, kill_then_resume, small_quickstart

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`

DDRAY = [sys.executable, "-m", "ddray.cli"]
SLICE = ["--only", "seed=0", "--only", "ipc=1"]


@pytest.fixture(scope="module")
def quickstart_store(tmp_path_factory):
    """The slice, run the way a user's long run often goes: its driver killed with SIGKILL once a
    few trials are stored, then run again to the end (`tests/sigkill.py` checks that nothing
    stored was lost, rewritten or stored twice)."""
    folder = tmp_path_factory.mktemp("qs")
    spec, store = small_quickstart(folder), str(folder / "store")
    kill_then_resume(spec, store, SLICE, clean_env())
    return spec, store


def test_every_planned_trial_stored(quickstart_store):
    spec, store = quickstart_store
    plan = json.loads(subprocess.check_output([*DDRAY, "plan", spec, *SLICE, "--json", "--store", store], cwd=REPO))
    keys = {t["key"] for t in plan["trials"]}
    assert all(t["done"] for t in plan["trials"])
    rows = Store(store).read_rows()
    assert sorted(rows["key"]) == sorted(keys)
    assert set(rows.loc[rows.stage == "synth", "method"]) == {"random", "herding", "dm", "sre2l", "rded"}


def test_rerun_starts_no_trial(quickstart_store):
    spec, store = quickstart_store
    t0 = time.perf_counter()
    again = subprocess.run([*DDRAY, "run", spec, *SLICE, "--store", store, "--no-progress"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert " 0 stored now" in again.stdout
    assert time.perf_counter() - t0 < 60  # seconds, not a benchmark: no Ray, no training


def test_report_writes_every_format(quickstart_store, tmp_path):
    _, store = quickstart_store
    out = tmp_path / "report"
    done = subprocess.run([*DDRAY, "report", store, "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("report.md", "report.json", "report.html"):
        assert (out / name).is_file(), name
    assert list(out.rglob("*.csv")) and list(out.rglob("*.png"))
    html = (out / "report.html").read_text()
    assert "<table" in html and '<img src="data:image/png;base64,' in html
    for method in ("random", "herding", "dm", "sre2l", "rded"):
        assert method in html
    data = json.loads((out / "report.json").read_text())
    scored = {r["method"] for r in data["tables"]["scores"] if r["lrs_mean"] is not None}
    assert scored == {"random", "herding", "dm", "sre2l", "rded"}   # every method of the slice has an LRS
    assert all(0 <= r["lrs_mean"] <= 1 for r in data["tables"]["scores"] if r["lrs_mean"] is not None)
    for fmt in ("md", "csv", "json"):
        text = subprocess.check_output([*DDRAY, "report", store, "--format", fmt], cwd=REPO, text=True)
        assert "herding" in text


def test_status_reports_done(quickstart_store):
    _, store = quickstart_store
    text = subprocess.check_output([*DDRAY, "status", store], cwd=REPO, text=True)
    assert "eval" in text and "failed" not in text


def test_status_by_method_counts_the_slice(quickstart_store):
    """The store's spec plans seeds 0-2 and IPC 1 and 10; the slice stored seed 0 of IPC 1."""
    _, store = quickstart_store
    text = subprocess.check_output([*DDRAY, "status", store, "--by-method", "--format", "md"], cwd=REPO, text=True)
    lines = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
             if line.startswith("| ") and not line.startswith("| stage")]
    cells = {(stage, who, ipc): (int(d), int(e), int(p)) for stage, who, ipc, d, e, p, *_ in lines}
    for method in ("random", "herding", "dm", "sre2l", "rded"):
        assert cells["synth", method, "1"] == (1, 0, 2)
        assert cells["synth", method, "10"] == (0, 0, 3)
        done, errored, pending = cells["eval", method, "1"]
        assert errored == 0 and pending == 2 * done > 0
        done, errored, pending = cells["eval", method, "10"]
        assert done == errored == 0 and pending > 0
    assert sum(d for d, _, _ in cells.values()) == len(Store(store).read_table())
    assert "stored trials" in text and "h of trial time left" in text and "with none stored yet" in text
