"""`ddray run` on a real local Ray: idempotent reruns, stored failures, retries, fractional GPUs."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ddray.plan import make_plan
from ddray.run import run_plan
from ddray.spec import parse_spec
from ddray.spec_check import resolve_methods
from ddray.store import Store
from tests.conftest import REPO, TINY_SPEC

pytestmark = pytest.mark.ray  # starts Ray / runs `ddray run`: not in `make test-fast`


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    os.environ["DDRAY_PROGRESS_EVERY_S"] = "0"  # every epoch reports progress to the driver: that path runs too
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(spec: dict, store: str, **kw):
    s = resolve_methods(parse_spec(spec))
    plan = make_plan(s)
    return plan, run_plan(s, plan, Store(store), progress=False, **kw)


def test_run_stores_every_trial_and_rerun_is_a_noop(ray_local, tmp_path, monkeypatch):
    import ddray.store.scan as scan_module

    store = str(tmp_path / "store")
    reads: list[str] = []
    verify = scan_module.verify_row
    monkeypatch.setattr(scan_module, "verify_row", lambda stage, name, data: (reads.append(name), verify(stage, name, data))[1])
    plan, summary = _run(TINY_SPEC, store)
    assert summary.exit_code == 0 and summary.stored == len(plan.trials)
    assert sorted(reads) == sorted(f"{k}.parquet" for k in plan.keys())  # each new row read once, at the end
    assert Store(store).scan().indexed == len(plan.trials)  # ... and folded into the index
    rows = Store(store).read_rows()
    assert sorted(rows["key"]) == sorted(plan.keys())
    assert rows.loc[rows.stage == "eval", "top1"].between(0, 1).all()
    assert set(rows.loc[rows.stage == "synth", "synth_s"].dropna().index) == set(rows.index[rows.stage == "synth"])
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "rows").rglob("*.parquet")}
    reads.clear()
    _, again = _run(TINY_SPEC, store)
    assert again.ran == 0 and again.already == len(plan.trials) and reads == []  # the index vouches for every row
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "store" / "rows").rglob("*.parquet")}


def test_failing_trial_is_stored_with_traceback_and_retried(ray_local, tmp_path, capfd):
    marker = tmp_path / "now-it-works"
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"boom": {"kind": "tests.plugin_methods:boom", "unless": str(marker)}, "random": {}}
    store = str(tmp_path / "store")
    plan, summary = _run(spec, store, max_failures=0)
    assert summary.exit_code == 1
    console = capfd.readouterr().err   # one line per failure, the traceback stays in the store
    assert "failed" in console and "injected failure" in console and "Traceback" not in console
    synth_boom = [t.key for t in plan.stage("synth") if t.config.method.name == "boom"]
    assert summary.failed == synth_boom
    errors = Store(store).errors_of()
    assert set(errors) == set(synth_boom)
    err = errors[synth_boom[0]]
    assert "injected failure" in err["exception"] and "Traceback" in err["traceback"] and err["attempts"] == 1
    # every trial not depending on the failure is stored; its dependants wait
    done = {k for v in Store(store).done_keys().values() for k in v}
    waiting = {t.key for t in plan.trials if set(t.deps) & set(synth_boom)}
    assert done == plan.keys() - set(synth_boom) - waiting and set(summary.blocked) == waiting

    from ddray.status import store_status

    Store(store).save_spec(__import__("yaml").safe_dump(spec))
    st = store_status(store)
    assert st.counts["synth"]["errored"] == 1 and "injected failure" in st.errors[0]["exception"]

    marker.write_text("ok")
    _, retry = _run(spec, store, retry_errored=True)
    assert retry.ran == 1 and retry.stored == 1 and not Store(store).errors_of()
    _, rest = _run(spec, store)
    assert rest.exit_code == 0 and rest.stored == len(waiting)


def test_a_deterministic_input_error_is_stored_once_not_retried(ray_local, tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"bad": {"kind": "tests.plugin_methods:bad_input"}}
    store = str(tmp_path / "store")
    plan, summary = _run(spec, store, max_failures=3)
    synth = [t.key for t in plan.stage("synth")]
    assert summary.exit_code == 1 and summary.failed == synth
    err = Store(store).errors_of()[synth[0]]
    assert err["attempts"] == 1 and "InputError" in err["exception"] and "the input is wrong" in err["exception"]


def test_fractional_gpus_pack_four_trials_per_gpu(ray_local, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    spec = copy.deepcopy(TINY_SPEC)
    # A barrier, not a guessed sleep: each probe waits (up to 60 s) until all four have started, so
    # they overlap exactly when Ray packed four 0.25-GPU trials on the one GPU at once.
    spec["methods"] = {"probe": {"kind": "tests.plugin_methods:noded", "together": 4, "seconds": 0.5, "log": str(log)}}
    spec["seeds"] = [0, 1, 2, 3]
    spec["resources"] = {"synth": {"cpu": 0.5, "gpu": 0.25}, "default": {"cpu": 0.5, "gpu": 0.25}}
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}]
    _, summary = _run(spec, str(tmp_path / "store"))
    assert summary.exit_code == 0
    spans = [json.loads(p.read_text()) for p in log.glob("*.json")]
    assert len(spans) == 4 and all(s["gpus"] is not None for s in spans)
    latest_start = max(s["start"] for s in spans)
    earliest_end = min(s["end"] for s in spans)
    assert latest_start < earliest_end, "the four 0.25-GPU trials did not all run at once"


def test_bring_your_own_files_are_evaluated(ray_local, tmp_path):
    import torch

    from ddray.data import load_dataset
    from ddray.engine import random_subset

    d = load_dataset("digits")
    folder = tmp_path / "mine" / "digits" / "ipc1"
    folder.mkdir(parents=True)
    idx = random_subset(d.train.labels, d.num_classes, 1, 5)
    torch.save(d.train_images(idx), folder / "images.pt")
    torch.save(d.train.labels[idx], folder / "labels.pt")
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"mine": {"files": str(tmp_path / "mine" / "{dataset}" / "ipc{ipc}"), "normalized": True}}
    plan, summary = _run(spec, str(tmp_path / "store"))
    assert summary.exit_code == 0 and not plan.stage("synth")
    rows = Store(str(tmp_path / "store")).read_rows()
    syn = rows[(rows.stage == "eval") & (rows.arm == "syn")]
    assert set(syn["method"]) == {"mine"} and syn["top1"].between(0, 1).all()
    assert syn["synth_s"].isna().all()  # a user's set has no time-to-synthesize


def test_an_evaluation_starts_once_its_own_set_is_stored_not_when_every_synthesis_is(ray_local, tmp_path):
    """No stage barrier: random's evaluation runs while a slow synthesis still holds the other slot.

    The slow synthesis holds its slot until an evaluation row is stored (at most 120 s). The only
    evaluation that can be stored meanwhile is random's, because sleepy's own evaluation depends on
    sleepy. A runner with a stage barrier makes it wait the full 120 s, and the test fails."""
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    spec = copy.deepcopy(TINY_SPEC)
    slow = {"kind": "tests.plugin_methods:sleepy", "seconds": 120.0, "log": str(log),
            "until": str(store / "rows" / "eval" / "*.parquet")}
    spec["methods"] = {"sleepy": slow, "random": {}}
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}]
    plan, summary = _run(spec, str(store))
    assert summary.exit_code == 0 and summary.stored == len(plan.trials)
    slow_run = json.loads(next(log.glob("*.json")).read_text())
    rows = Store(str(store)).read_rows()
    random_eval = rows[(rows.stage == "eval") & (rows.method == "random")]["key"].item()
    stored_at = (store / "rows" / "eval" / f"{random_eval}.parquet").stat().st_mtime
    assert stored_at <= slow_run["end"] and slow_run["end"] - slow_run["start"] < 110, \
        "random's evaluation waited for the unrelated slow synthesis"
