"""Tuned-best track: the same search for every compared arm, selection on validation only, resumable."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from ddray.data import PixelSource, RealData, Split, build_real_data
from ddray.errors import InputError
from ddray.run.tuned import validation_view
from ddray.spec import parse_spec
from ddray.store import Store
from ddray.tuning.select import search_candidates, select_best
from ddray.tuning.space import apply_knobs, random_configs
from ddray.trials import comparison_cell
from tests.conftest import REPO, TINY_SPEC, planned, write_spec
from tests.sigkill import wait_until_gone

TUNING = {"space": {"lr": [0.001, 0.01]}, "val_fraction": 0.2}


def tuned_spec(**tuning) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec["tuning"] = {**copy.deepcopy(TUNING), **tuning}
    return spec


# ---------------------------------------------------------------------------- spec and space


def test_spec_rejects_unfair_or_impossible_searches():
    def problems(tuning) -> str:
        with pytest.raises(InputError) as e:
            parse_spec({**copy.deepcopy(TINY_SPEC), "tuning": tuning})
        return "\n".join(e.value.problems)

    assert "unknown knob 'lrr' (did you mean 'lr'?)" in problems({"space": {"lrr": [0.1]}})
    assert "more than budget 2" in problems({"space": {"lr": [0.1, 0.2, 0.3]}, "budget": 2})
    assert "random search needs a budget" in problems({"space": {"lr": [0.1]}, "algorithm": "random"})
    assert "lr is a range" in problems({"space": {"lr": {"low": 0.001, "high": 0.1}}})
    assert "over the cap max_epochs=5" in problems({"space": {"epochs": [2, 8]}, "max_epochs": 5})
    assert "tuning.val_fraction" in problems({"space": {"lr": [0.1]}, "val_fraction": 1.0})
    # searching what defines an arm (its labels) is not a knob
    assert "unknown knob 'labels'" in problems({"space": {"labels": ["hard"]}})


def test_yaml_numbers_and_seeded_random_draws():
    s = parse_spec(tuned_spec(space={"lr": ["1e-3", 0.01]}))
    assert s.tuning.configs() == [{"lr": 0.001}, {"lr": 0.01}]
    space = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}, "batch_size": [8, 16]}
    a, b = random_configs(space, 5, seed=3), random_configs(space, 5, seed=3)
    assert a == b and len(a) == 5 and all(1e-4 <= c["lr"] <= 1e-1 for c in a)
    assert random_configs(space, 5, seed=4) != a


def test_apply_knobs_validates_and_ignores_augmentation_when_off():
    base = parse_spec(TINY_SPEC).student_protocol("convnet-d1-w16").model_dump(mode="json")
    on = apply_knobs(base, {"lr": 0.02, "augment.cutmix": 0.5}, aug=True)
    assert on["lr"] == 0.02 and on["augment"]["cutmix"] == 0.5 and on["augment"]["rrc"] is True
    off = apply_knobs({k: v for k, v in base.items() if k != "augment"}, {"lr": 0.02, "augment.cutmix": 0.5}, aug=False)
    assert off["lr"] == 0.02 and "augment" not in off
    with pytest.raises(ValueError):
        apply_knobs(base, {"batch_size": 0}, aug=True)


def test_select_best_is_deterministic_and_skips_diverged():
    c = [{"knobs": {"lr": 0.1}, "val_top1": 0.5, "status": "ok"},
         {"knobs": {"lr": 0.01}, "val_top1": 0.5, "status": "ok"},
         {"knobs": {"lr": 1.0}, "val_top1": None, "status": "diverged"}]
    assert select_best(c)["knobs"] == {"lr": 0.01} == select_best(c[::-1])["knobs"]
    assert select_best([c[2]]) is None


# ---------------------------------------------------------------------------- plan


def test_plan_gives_every_compared_arm_the_same_search():
    fixed, plan = planned(TINY_SPEC), planned(tuned_spec())
    assert fixed.keys() <= plan.keys(), "adding tuning changed fixed-track keys"
    tuned = [t for t in plan.stage("eval") if t.config.track == "tuned"]
    assert len(tuned) == len(fixed.stage("eval"))
    by_cell: dict[str, dict[str, list]] = {}
    for t in tuned:
        search = [plan.by_key[d] for d in t.deps if plan.by_key[d].stage == "search"]
        assert all(s.config.seed == 0 and s.config.split == "val" and s.config.track == "tuned" for s in search)
        assert "test" not in search[0].config.model_dump_json()
        knobs = sorted(json.dumps(s.config.knobs) for s in search)
        by_cell.setdefault(comparison_cell(t.config), {})[t.config.arm + str(t.config.method)] = knobs
    for arms in by_cell.values():  # syn (each method) and rdm of one cell: identical search configs
        assert len({json.dumps(k) for k in arms.values()}) == 1 and len(next(iter(arms.values()))) == 2
    assert any(any(a.startswith("rdm") for a in arms) and len(arms) > 1 for arms in by_cell.values())
    # tuned and fixed rows never share a comparison cell
    assert not {comparison_cell(t.config) for t in tuned} & {comparison_cell(t.config) for t in fixed.stage("eval")}


def test_tuned_keys_hash_the_search_not_the_seed_slice():
    spec = tuned_spec()
    spec["seeds"] = [0, 1]
    full = planned(spec)
    only1 = planned(spec, {"seed": {"1"}})
    assert only1.keys() <= full.keys()
    # a slice without the search seed still plans (and depends on) seed 0's search and distilled sets
    for t in only1.stage("eval"):
        assert all(d in only1.by_key for d in t.deps)
    assert {t.key for t in only1.stage("search")} == {t.key for t in full.stage("search")}
    bigger = tuned_spec(space={"lr": [0.001, 0.01, 0.1]})
    assert not {t.key for t in full.stage("eval") if t.config.tuning} & planned(bigger).keys()


# ---------------------------------------------------------------------------- execution without Ray


class _Sealed(torch.Tensor):
    """Test labels that fail on any use: the proof that a search never reads them."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the test split was read during search ({getattr(func, '__name__', func)})")


class _SealedPixels(PixelSource):
    """Test pixels that fail on any read."""

    def __init__(self, like: PixelSource):
        self.shape, self.dtype, self.count = like.shape, like.dtype, like.count

    def fill(self, out, rows):
        raise AssertionError("the test split was read during search (its pixels)")


def _sealed(data: RealData) -> RealData:
    test = Split("test", data.test.labels, _SealedPixels(data.test.pixels.source))
    test.labels = torch.Tensor._make_subclass(_Sealed, data.test.labels)
    return RealData(data.name, data.train, test, data.classes, data.pixels, data.scale)


def test_validation_view_is_disjoint_and_rdm_draws_only_from_the_rest():
    from ddray.engine import rdm_arm

    n = 200  # each image holds its own index, so sets of images are sets of indices
    data = build_real_data("ids", torch.arange(n).float().view(n, 1, 1, 1), torch.arange(n) % 10, torch.zeros(5, 1, 1, 1),
                           torch.zeros(5, dtype=torch.long), [str(c) for c in range(10)], (0.0,), (1.0,), normalized=True)
    view = validation_view(_sealed(data), 0.2, seed=0)
    train, val = set(view.train.tensor().flatten().tolist()), set(view.test.tensor().flatten().tolist())
    assert not train & val and len(train | val) == n and len(val) == 40
    assert view.test.labels.bincount(minlength=10).tolist() == [4] * 10  # stratified
    for seed in range(5):
        x, _ = rdm_arm(view, 3, seed)
        assert set(x.flatten().tolist()) <= train


@pytest.mark.slow
def test_search_never_reads_the_test_split_then_tuned_rerun_tests_the_winner(tmp_path, monkeypatch):
    import ddray.run.execute as ex
    from ddray.data import load_dataset

    from ddray.run.worker_env import WorkerEnv

    plan = planned(tuned_spec())
    store, env = Store(str(tmp_path / "s")), WorkerEnv(store=str(tmp_path / "s"))
    real = load_dataset("digits")
    sealed = _sealed(real)
    cpu = torch.device("cpu")

    def run(trials, data):
        monkeypatch.setattr(ex, "load_data", lambda config, env: data)
        for t in trials:
            store.write_row(ex.execute(t, env, cpu))

    run(plan.stage("full") + plan.stage("synth"), real)       # teachers and distilled sets
    with pytest.raises(AssertionError, match="test split was read"):  # the seal works: a test-set trial trips it
        run(plan.stage("eval")[:1], sealed)
    run(plan.stage("search"), sealed)                          # every search: validation only
    run(plan.stage("eval"), real)                              # selection is final: test once
    rows = store.read_rows()
    search = rows[rows.stage == "search"]
    assert len(search) == len(plan.stage("search")) and set(search.track) == {"tuned"}
    tuned = rows[(rows.stage == "eval") & (rows.track == "tuned")]
    assert len(tuned) == len(rows[(rows.stage == "eval") & (rows.track == "fixed")]) == 8
    for _, row in tuned.iterrows():  # each re-run trained its cell's best validation config
        cands = search[search.key.isin(plan.by_key[row.key].deps)]
        assert len(cands) == 2
        best = select_best(search_candidates(cands.to_dict("records")))
        assert json.loads(row.protocol_json)["lr"] == best["knobs"]["lr"]
    for cell in tuned[tuned.arm == "rdm"].cell:  # syn and rdm of a tuned cell meet in the report
        assert (tuned[tuned.arm == "syn"].cell == cell).any()


# ---------------------------------------------------------------------------- Ray, SIGKILL, report

DDRAY = [sys.executable, "-m", "ddray.cli"]


def _rows(store: Store, stage: str) -> dict[str, bytes]:
    out = {}
    for k in store.done_keys([stage])[stage]:
        with store.loc.fs.open_input_stream(store.row_path(stage, k)) as f:
            out[k] = f.read()
    return out


@pytest.mark.ray
def test_sigkill_mid_search_resumes_without_redoing_search_and_reports_both_tracks(tmp_path):
    spec = tuned_spec()
    # hard labels, no augmentation: no teacher to train, so the test is about search and resume; one
    # method: two compared cells (its syn and the rdm arm), 9 trials, of which 4 searches to kill in
    spec["methods"] = {"random": {}}
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": False}]
    path = write_spec(tmp_path / "tuned.yaml", spec)
    uri = str(tmp_path / "store")
    store = Store(uri)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO)
    cmd = [*DDRAY, "run", str(path), "--store", uri, "--no-progress"]
    planned_trials = planned(spec)
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not _rows(store, "search"):
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)   # the driver only: Ray's reaper takes its workers down
    proc.wait()
    wait_until_gone(proc.pid)
    before = {s: _rows(store, s) for s in ("synth", "search", "eval")}
    n_before = sum(len(v) for v in before.values())
    assert before["search"] and n_before < len(planned_trials.trials)
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"{n_before} already stored, {len(planned_trials.trials) - n_before} stored now", " ".join(done.stdout.split()))
    after = {s: _rows(store, s) for s in ("synth", "search", "eval")}
    for stage, rows in before.items():
        assert all(after[stage][k] == v for k, v in rows.items()), f"a {stage} row stored before the kill was rewritten"
    assert set().union(*after.values()) == planned_trials.keys()

    from ddray.report_cli import report_store

    text = report_store(uri, fmt="md")
    assert "track fixed" in text and "track tuned" in text
    rows = store.read_rows()
    tuned = rows[(rows.stage == "eval") & (rows.track == "tuned")]
    assert len(tuned) == 2 and tuned.top1.between(0, 1).all()
