"""Planning: stable keys across processes, exactly the affected keys change, shared baselines."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from ddray.plan import make_plan, parse_only
from ddray.spec_check import load_spec
from ddray.trials import comparison_cell
from tests.conftest import REPO, TINY_SPEC, planned

import pytest


def plan_of(spec: dict):
    return planned(spec)


def test_quickstart_plan_json_has_every_trial_with_key():
    from typer.testing import CliRunner

    from ddray.cli import app

    result = CliRunner().invoke(app, ["plan", str(REPO / "specs/quickstart.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"]["eval"] > 0 and data["counts"]["synth"] > 0 and data["counts"]["full"] > 0
    keys = [t["key"] for t in data["trials"]]
    assert len(keys) == len(set(keys)) == sum(data["counts"].values())


@pytest.mark.slow
def test_keys_stable_in_a_second_process():
    code = ("import json; from ddray.spec_check import load_spec; from ddray.plan import make_plan; "
            f"print(json.dumps(sorted(make_plan(load_spec({str(REPO / 'specs/quickstart.yaml')!r}, check=False)).keys())))")
    a = json.loads(subprocess.check_output([sys.executable, "-c", code], env={"PYTHONHASHSEED": "1", "PATH": ""}))
    b = json.loads(subprocess.check_output([sys.executable, "-c", code], env={"PYTHONHASHSEED": "2", "PATH": ""}))
    here = sorted(make_plan(load_spec(REPO / "specs/quickstart.yaml", check=False)).keys())
    assert a == b == here


def test_changing_epochs_changes_exactly_eval_keys():
    base = plan_of(TINY_SPEC)
    spec = copy.deepcopy(TINY_SPEC)
    spec["overrides"]["epochs"] = 4
    new = plan_of(spec)
    changed = base.keys() ^ new.keys()
    stages = {t.stage for t in base.trials if t.key in changed}
    assert stages == {"eval"}
    assert {t.key for t in base.stage("full")} == {t.key for t in new.stage("full")}
    assert {t.key for t in base.stage("synth")} == {t.key for t in new.stage("synth")}
    assert len(changed) == 2 * len(base.stage("eval"))


def test_changing_a_method_param_changes_only_its_keys():
    base = plan_of(TINY_SPEC)
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"]["herding"] = {"arch": "convnet-d2"}
    new = plan_of(spec)
    gone = base.keys() - new.keys()
    assert gone and all("herding" in base.by_key[k].methods and base.by_key[k].config.method.name == "herding"
                        for k in gone)


def test_random_baselines_shared_by_methods():
    p = plan_of(TINY_SPEC)
    rdm = [t for t in p.stage("eval") if t.config.arm == "rdm"]
    assert rdm and all(set(t.methods) == {"random", "herding"} for t in rdm)
    # adding a method adds no new baseline, full-data or teacher trial
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"]["kcenter"] = {}
    p2 = plan_of(spec)
    assert {t.key for t in p2.trials if getattr(t.config, "arm", None) in ("rdm", "full")} == {t.key for t in p.trials if getattr(t.config, "arm", None) in ("rdm", "full")}


def test_scores_arms_and_cells():
    p = plan_of(TINY_SPEC)
    evals = p.stage("eval")
    arms = {(t.config.arm, t.config.labels, t.config.aug) for t in evals}
    assert arms == {("syn", "hard", True), ("syn", "soft", True), ("syn", "soft", False), ("rdm", "soft", True), ("rdm", "soft", False)}
    syn = [t for t in evals if t.config.arm == "syn" and t.config.labels == "soft"]
    rdm_cells = {comparison_cell(t.config) for t in evals if t.config.arm == "rdm"}
    assert all(comparison_cell(t.config) in rdm_cells for t in syn)
    # soft arms depend on the teacher's full-data trial; syn arms on their synthesis trial
    teacher = p.stage("full")
    assert all(set(t.deps) & {f.key for f in teacher} for t in syn)
    synth_keys = {t.key for t in p.stage("synth")}
    assert all(set(t.deps) & synth_keys for t in syn)


def test_trained_features_look_through_the_full_data_arm_of_their_arch():
    base = plan_of(TINY_SPEC)
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"]["herding"] = {"features": "trained", "arch": "convnet-d2-w16"}
    p = plan_of(spec)
    synth = next(t for t in p.stage("synth") if t.config.method.name == "herding")
    full = [t for t in p.stage("full") if t.config.arch == "convnet-d2-w16"]
    assert len(full) == 1 and synth.deps == (full[0].key,)
    assert synth.config.teachers[0].key == full[0].key and synth.config.teachers[0].arch == "convnet-d2-w16"
    # nothing else moved: the other method's and the shared trials keep their keys
    kept = {t.key for t in base.trials if "herding" not in t.methods or set(t.methods) > {"herding"}}
    assert kept <= p.keys()


def test_only_slices_keep_keys():
    spec = copy.deepcopy(TINY_SPEC)
    spec["ipc"] = [1, 2]
    full = plan_of(spec)
    part = planned(spec, parse_only(["ipc=1", "method=herding"]))
    assert part.keys() < full.keys()
    assert all(getattr(t.config, "ipc", None) in (None, 1) for t in part.trials)
    with pytest.raises(ValueError):
        parse_only(["colour=red"])


def test_trained_configs_hold_their_protocol_typed_and_dump_the_stored_knob_dict():
    """A trial's protocol is a typed `Protocol` made once (a checkpoint's number: `Pretrained`), equal
    after a trip through JSON (the worker's copy), and dumped as the knob dict keys hash: no
    `augment` entry for an un-augmented arm, knobs added later absent at their defaults."""
    from ddray.protocols import Protocol
    from ddray.trials import Pretrained, Trial

    spec = copy.deepcopy(TINY_SPEC)
    spec["arms"] = [{"arm": "syn", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "soft", "aug": True}]
    spec["teachers"] = {"arch": "convnet-d1-w16"}
    trained = [t for t in planned(spec).trials if t.stage != "synth"]
    assert {t.config.aug for t in trained if t.stage == "eval"} == {False, True}
    for t in trained:
        cfg = t.config
        assert isinstance(cfg.protocol, (Protocol, Pretrained)) and cfg.recipe is cfg.protocol
        assert Trial.from_dict(json.loads(json.dumps(t.to_dict()))).config == cfg
        dumped = cfg.model_dump(mode="json")["protocol"]
        assert ("augment" in dumped) == (cfg.aug or cfg.stage == "full")
        assert not {"zca", "aug_for_hard", "real_batch_size"} & dumped.keys()
