"""A store that cannot lie: damaged rows, a deleted spec.yaml, garbage error files, Ctrl-C, filters
that match nothing, resources no node has, and two drivers on one store — each checked on a real
store, as a hostile user would damage it (docs/reliability.md lists the promises)."""

from __future__ import annotations

import copy
import io
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ddray.cli import app
from ddray.errors import InputError
from ddray.run import run_plan
from ddray.store import Store
from tests.conftest import REPO, TINY_SPEC, planned, write_spec
from tests.sigkill import DDRAY, clean_env

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`

# Hard labels without augmentation: no teacher, five trials (2 syntheses, 2 syn and 1 rdm evaluation).
SPEC = {**copy.deepcopy(TINY_SPEC), "name": "integrity",
        "arms": [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": False}]}


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(spec: dict, uri: str, **kw):
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    s = resolve_methods(parse_spec(spec))
    store = Store(uri)
    store.save_spec(_yaml(spec))
    plan = planned(spec)
    return plan, run_plan(s, plan, store, progress=False, **kw)


def _yaml(spec: dict) -> str:
    import yaml

    return yaml.safe_dump(spec, sort_keys=False)


@pytest.fixture(scope="module")
def template(ray_local, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "store"
    plan, summary = _run(SPEC, str(root))
    assert summary.exit_code == 0 and summary.stored == len(plan.trials) == 5
    return root


def _copy(template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "store"
    shutil.copytree(template, dest)
    return dest


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


# ---------------------------------------------------------------------------------------- 1. rows

def _damage(root: Path) -> dict[str, str]:
    """Five kinds of bad row file in rows/eval; returns {file name: what was done}."""
    evals = sorted((root / "rows" / "eval").glob("*.parquet"))
    synth = sorted((root / "rows" / "synth").glob("*.parquet"))
    a, b, c = evals
    a.write_bytes(b"\x00garbage, not parquet\xff" * 10)                            # corrupt
    b.write_bytes(b.read_bytes()[: len(b.read_bytes()) // 2])                       # truncated
    buf = io.BytesIO()
    pq.write_table(pa.table({"key": [c.stem], "accuracy": [0.99]}), buf)
    c.write_bytes(buf.getvalue())                                                   # foreign schema
    shutil.copy(synth[1], synth[0])                                                 # a valid row, misnamed
    (root / "rows" / "eval" / "notes.parquet").write_bytes(b"stray")                # stray file
    return {a.name: "corrupt", b.name: "truncated", c.name: "foreign", synth[0].name: "misnamed",
            "notes.parquet": "stray"}


def test_bad_rows_are_listed_left_out_of_the_report_and_recomputed(template, tmp_path):
    root = _copy(template, tmp_path)
    intact = {p.name: p.read_bytes() for p in (root / "rows").rglob("*.parquet")}
    damaged = _damage(root)
    uri = str(root)

    status = _cli("status", uri)
    assert status.exit_code == 0, status.output
    flat = " ".join(status.output.split())
    for name in damaged:
        assert name in flat
    assert "not readable as Parquet" in flat and "not a ddray row" in flat and "holds the row of key" in flat
    assert "not a row file name" in flat

    report = _cli("report", uri, "--format", "md")
    assert report.exit_code == 0, report.output
    assert report.output.count("left out") == len(damaged)

    plan, summary = _run(SPEC, uri)
    assert summary.exit_code == 0
    assert len(summary.quarantined) == len(damaged)
    assert summary.stored == 4                     # the four keys whose rows were bad, recomputed
    assert not Store(uri).scan().bad and Store(uri).stored_keys() == plan.keys()
    assert len(list((root / "quarantine").rglob("*"))) >= len(damaged)
    for p in (root / "rows").rglob("*.parquet"):   # untouched rows are byte-identical; recomputed ones match
        if p.name not in damaged:
            assert p.read_bytes() == intact[p.name]
    rows = Store(uri).read_rows().set_index("key")
    before = pq.read_table(io.BytesIO(intact[next(n for n, w in damaged.items() if w == "corrupt")])).to_pylist()[0]
    assert rows.loc[before["key"], "top1"] == before["top1"]   # deterministic: the same number again


def test_bad_rows_on_s3_are_named_too(template, moto_s3, tmp_path):
    port, _ = moto_s3
    uri = f"s3://ddray/integrity?endpoint_override=127.0.0.1:{port}&scheme=http"
    store = Store(uri)
    for p in template.rglob("*"):
        if p.is_file():
            rel = p.relative_to(template).as_posix()
            with store.loc.fs.open_output_stream(store.path(rel)) as f:
                f.write(p.read_bytes())
    victim = sorted(store.done_keys(["eval"])["eval"])[0]
    with store.loc.fs.open_output_stream(store.row_path("eval", victim)) as f:
        f.write(b"truncated")
    scan = store.scan()
    assert [b.key for b in scan.bad] == [victim] and victim not in scan.keys["eval"]
    assert victim in _cli("status", uri).output.replace("\n", "")
    moved = store.quarantine(scan.bad)
    assert moved and not store.scan().bad


# ------------------------------------------------------------------------------- 2. the store's identity

def test_a_different_recipe_is_refused_even_when_spec_yaml_is_deleted(template, tmp_path):
    root = _copy(template, tmp_path)
    (root / "spec.yaml").unlink()
    other = copy.deepcopy(SPEC)
    other["overrides"]["epochs"] = 2
    result = _cli("run", str(write_spec(tmp_path / "other.yaml", other)), "--store", str(root), "--no-progress")
    assert result.exit_code == 2, result.output
    assert "already holds these trials computed another way" in " ".join(result.output.split())
    # the same spec (or one that only adds a seed) is welcome without spec.yaml
    grown = copy.deepcopy(SPEC)
    grown["seeds"] = [0, 1]
    assert _cli("plan", str(write_spec(tmp_path / "grown.yaml", grown)), "--store", str(root)).exit_code == 0


def test_rows_of_two_recipes_in_one_store_are_reported_apart_never_averaged(template, tmp_path):
    """A store that came to hold one cell under two recipes (rows copied in, spec.yaml deleted) is
    reported as two tracks, each with its own number, never as their mean."""
    from ddray.report import build_report

    other = copy.deepcopy(SPEC)
    other["overrides"]["epochs"] = 2
    _, summary = _run(other, str(tmp_path / "other"))
    assert summary.exit_code == 0
    root = _copy(template, tmp_path)
    for p in (tmp_path / "other" / "rows").rglob("*.parquet"):
        shutil.copy(p, root / "rows" / p.parent.name / p.name)
    (root / "spec.yaml").unlink()

    def rdm_of(uri: str) -> float:
        rows = Store(uri).read_rows()
        return float(rows.loc[(rows.stage == "eval") & (rows.arm == "rdm"), "top1"].iloc[0])

    mixed = build_report(Store(str(root)).read_rows())
    rdm = mixed.accuracy[mixed.accuracy["method"] == "rdm"].set_index("track")["acc_mean"]
    assert dict(rdm) == {"fixed:epochs=3": rdm_of(str(template)), "fixed:epochs=2": rdm_of(str(tmp_path / "other"))}
    assert any("reported apart" in w for w in mixed.warnings)
    assert set(mixed.scores["track"]) == {"fixed:epochs=3", "fixed:epochs=2"}
    assert len(mixed.warnings) == len(set(mixed.warnings))  # what both tracks share is said once


def test_status_and_report_work_without_spec_yaml(template, tmp_path):
    root = _copy(template, tmp_path)
    (root / "spec.yaml").unlink()
    status = _cli("status", str(root))
    assert status.exit_code == 0 and "pending is unknown" in " ".join(status.output.split())
    report = _cli("report", str(root), "--format", "md")
    assert report.exit_code == 0 and "no spec.yaml" in report.output


# ----------------------------------------------------------------------------------- 3. error files

def test_garbage_error_files_count_as_absent_and_are_replaced(template, tmp_path):
    root = _copy(template, tmp_path)
    store = Store(str(root))
    (root / "errors").mkdir()
    (root / "errors" / "0123456789abcdef.json").write_text("this is not JSON {")
    (root / "errors" / "fedcba9876543210.json").write_bytes(bytes(range(256)))
    assert store.errors_of() == {}
    assert _cli("status", str(root)).exit_code == 0
    err = store.write_error("0123456789abcdef", "eval", "x", RuntimeError("the real error"))
    assert err["attempts"] == 1 and store.errors_of()["0123456789abcdef"]["exception"] == "RuntimeError: the real error"


# --------------------------------------------------------------------------- 5, 6. errors before work

def test_only_that_matches_nothing_exits_2_naming_the_values(tmp_path):
    path = str(write_spec(tmp_path / "s.yaml", SPEC))
    for item, named in (("seed=abc", "its seed values are 0"), ("method=nosuch", "random, herding"),
                        ("ipc=7", "its ipc values are 1")):
        result = _cli("run", path, "--store", str(tmp_path / "st"), "--only", item, "--no-progress")
        assert result.exit_code == 2, result.output
        assert "matches nothing" in result.output and named in result.output
    assert not (tmp_path / "st" / "rows").exists()


def test_a_resource_no_node_can_hold_is_an_input_error_before_any_work(ray_local, tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["resources"] = {"default": {"cpu": 1000}}
    with pytest.raises(InputError, match="CPU 1000"):
        _run(spec, str(tmp_path / "store"))
    assert not list((tmp_path / "store").rglob("*.parquet"))


# -------------------------------------------------------------------------------- 4. Ctrl-C

def _slow_spec(tmp_path: Path, seconds: float, n_seeds: int = 3) -> dict:
    log = tmp_path / "calls"
    log.mkdir(exist_ok=True)
    spec = copy.deepcopy(SPEC)
    spec["methods"] = {"slow": {"kind": "tests.plugin_methods:counted", "log": str(log), "seconds": seconds}}
    spec["seeds"] = list(range(n_seeds))
    return spec


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_ctrl_c_exits_130_and_says_what_was_not_run(tmp_path, signum, code):
    """SIGTERM (timeout, systemd, Kubernetes, Slurm) takes Ctrl-C's path: summary, leases released, 143."""
    import json

    spec = _slow_spec(tmp_path, seconds=60)
    path, uri = write_spec(tmp_path / "s.yaml", spec), str(tmp_path / "store")
    env = clean_env()
    proc = subprocess.Popen([*DDRAY, "run", str(path), "--store", uri, "--no-progress"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not (tmp_path / "calls" / "calls").exists():   # a synthesis is running
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    os.kill(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    total = len(planned(spec).trials)
    m = re.search(r"interrupted: (\d+) of (\d+) stored, (\d+) not run; rerun to continue", " ".join(out.split()))
    assert m and int(m.group(2)) == total and int(m.group(1)) + int(m.group(3)) == total, out
    assert "Traceback" not in out
    leases = [json.loads(p.read_text()) for p in (tmp_path / "store" / "leases").glob("*/*.json")]
    assert leases and all(lease["released"] for lease in leases)   # the next driver need not wait for them


# ----------------------------------------------------------------------------- 7. two drivers

def test_two_drivers_on_one_store_train_each_trial_once(tmp_path):
    """Counts trainings, not row writes: each trial trains under a won claim that records it
    (`leases/<key>/<gen>.json`, never deleted), and each set is made by a counting method."""
    import json

    spec = _slow_spec(tmp_path, seconds=3, n_seeds=2)
    path, uri = write_spec(tmp_path / "s.yaml", spec), str(tmp_path / "store")
    cmd = [*DDRAY, "run", str(path), "--store", uri, "--no-progress"]
    env = clean_env()
    first = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    time.sleep(0.5)
    second = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    plan = planned(spec)
    assert Store(uri).stored_keys() == plan.keys()
    leases = [json.loads(p.read_text()) | {"key": p.parent.name} for p in (Path(uri) / "leases").glob("*/*.json")]
    trainings = sorted(lease["key"] for lease in leases if lease["trained"])
    assert trainings == sorted(plan.keys()), outs            # every trial trained, none twice
    assert all(lease["released"] for lease in leases)       # every lease released
    calls = (tmp_path / "calls" / "calls").read_text().split()
    assert sorted(c.rsplit("-", 1)[0] for c in calls) == sorted(f"{s}-1" for s in spec["seeds"])  # each set made once
