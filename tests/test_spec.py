"""Spec validation: every user mistake is one `path.to.field: message` line and exit 2."""

from __future__ import annotations

import copy
import time

import pytest
import yaml
from typer.testing import CliRunner

from ddray.cli import app
from ddray.errors import InputError
from ddray.spec import parse_spec
from ddray.spec_check import load_spec
from tests.conftest import REPO, TINY_SPEC, write_spec

runner = CliRunner()


def problems_of(tmp_path, spec) -> list[str]:
    with pytest.raises(InputError) as e:
        load_spec(write_spec(tmp_path / "s.yaml", spec))
    return e.value.problems


def test_shipped_specs_parse_and_plan():
    from ddray.plan import make_plan

    for p in sorted((REPO / "specs").glob("*.yaml")):
        spec = load_spec(p, check=False)
        assert spec.name == p.stem and make_plan(spec).stage("eval"), p


def test_quickstart_validates():
    result = runner.invoke(app, ["validate", str(REPO / "specs/quickstart.yaml")])
    assert result.exit_code == 0, result.output


def test_unknown_key_did_you_mean(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["seedz"] = spec.pop("seeds")
    assert any(p.startswith("seedz: unknown key 'seedz' (did you mean 'seeds'?)") for p in problems_of(tmp_path, spec))
    spec = copy.deepcopy(TINY_SPEC)
    spec["scores"] = {"lamda": 0.3}
    assert any(p.startswith("scores.lamda: unknown key") and "lambda" in p for p in problems_of(tmp_path, spec))


def test_every_problem_reported_at_once(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["archs"] = ["convnet-d3", "resnett18"]
    spec["datasets"]["cifar10"] = {"root": str(tmp_path / "nowhere")}
    spec["methods"]["dmm"] = {}
    spec["ipc"] = [1, 500]
    spec["resources"] = {"convnet-d3": {"gpu": 1.5}}
    probs = problems_of(tmp_path, spec)
    text = "\n".join(probs)
    assert "resources.convnet-d3.gpu" in text
    # shape errors stop before registry checks; fix the gpu and see the rest
    spec["resources"] = {"convnet-d3": {"gpu": 0.5}}
    text = "\n".join(problems_of(tmp_path, spec))
    assert "archs.1: " in text and "resnet18" in text
    assert "datasets.cifar10.root" in text and "data_batch_1" in text
    assert "methods.dmm" in text and "dm" in text
    assert "ipc.1: 500 images per class" in text


def test_method_params_checked(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"]["herding"] = {"iteratoins": 3}
    assert any(p.startswith("methods.herding.iteratoins: unknown key") for p in problems_of(tmp_path, spec))


def test_protocol_overrides_checked(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["overrides"] = {"epochs": 0, "optimiser": "sgd"}
    text = "\n".join(problems_of(tmp_path, spec))
    assert "overrides.epochs" in text and "overrides.optimiser: unknown key" in text and "optimizer" in text


def test_gpu_fraction_rules():
    ok = copy.deepcopy(TINY_SPEC)
    ok["resources"] = {"default": {"cpu": 1, "gpu": 0.25}, "convnet-d1-w16": {"gpu": 2}}
    parse_spec(ok)
    bad = copy.deepcopy(TINY_SPEC)
    bad["resources"] = {"default": {"gpu": 1.5}}
    with pytest.raises(InputError) as e:
        parse_spec(bad)
    assert e.value.problems[0].startswith("resources.default.gpu: ")


def test_duplicate_seeds_and_bad_ipc():
    bad = copy.deepcopy(TINY_SPEC)
    bad["seeds"] = [0, 1, 1]
    bad["ipc"] = [0]
    with pytest.raises(InputError) as e:
        parse_spec(bad)
    text = "\n".join(e.value.problems)
    assert "seeds: duplicate seeds: [1]" in text and "ipc: every IPC must be > 0" in text


def test_unreadable_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ndatasets: {digits: {}\nmethods: [\n")
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 2
    assert "line" in result.output and "bad.yaml" in result.output and "Traceback" not in result.output


def test_validate_cli_exit_codes(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["archs"] = ["nope"]
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path / "s.yaml", spec))])
    assert result.exit_code == 2 and "archs.0: " in result.output
    assert runner.invoke(app, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2


def test_schema_has_descriptions():
    import json

    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.output)
    assert schema["properties"]["ipc"]["description"]
    assert "lambda" in json.dumps(schema)


# ---------------------------------------------------------------------------- hostile input
# Inputs that used to pass `validate` and then fail, hang or print a traceback: each is now one
# `field: message` (or `file: message`) line and exit 2, in well under a second.


def _validate(tmp_path, text: str, *args: str) -> str:
    p = tmp_path / "s.yaml"
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    t0 = time.monotonic()
    result = runner.invoke(app, [*(args or ("validate",)), str(p)])
    assert time.monotonic() - t0 < 10
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def _tiny_text(**changes) -> str:
    return yaml.safe_dump({**copy.deepcopy(TINY_SPEC), **changes}, sort_keys=False)


def test_duplicate_key_names_the_key_and_both_lines(tmp_path):
    text = _tiny_text() + "ipc: [10]\n"
    first, again = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("ipc:")]
    out = _validate(tmp_path, text)
    assert "s.yaml" in out and f"duplicate key 'ipc' (lines {first} and {again})" in out
    nested = _validate(tmp_path, "name: x\ndatasets:\n  digits: {}\n  digits: {}\n")
    assert "duplicate key 'digits' (lines 3 and 4)" in nested


def test_merge_keys_and_small_aliases_still_load(tmp_path):
    from ddray.yaml_strict import load

    assert load("a: &x {k: 1}\nb:\n  <<: *x\n  k: 2\nc: *x\n") == {"a": {"k": 1}, "b": {"k": 2}, "c": {"k": 1}}
    text = _tiny_text().replace("overrides:\n", "overrides: &knobs\n").replace("full:\n  epochs: 1\n", "full:\n  <<: *knobs\n  epochs: 1\n")
    assert "<<: *knobs" in text
    p = tmp_path / "s.yaml"
    p.write_text(text)
    assert load_spec(p).full.overrides == {"epochs": 1, "batch_size": 16}


@pytest.mark.parametrize("value, tag", [("!!binary aGVsbG8=", "!!binary"), ("!!set {a: null}", "!!set"),
                                        ("!thing x", "!thing"), ("!!str 1", "!!str")])
def test_yaml_tags_are_refused(tmp_path, value, tag):
    out = _validate(tmp_path, _tiny_text().replace("name: tiny", f"name: {value}"))
    assert f"the tag {tag} is not allowed" in out and "line 1" in out


@pytest.mark.parametrize("changes, where", [
    ({"ipc": [True]}, "ipc: item 0: true is a boolean"),
    ({"seeds": [0, False]}, "seeds: item 1: false is a boolean"),
    ({"overrides": {"epochs": True}}, "overrides.epochs: true is a boolean"),
    ({"full": {"epochs": True}}, "full.epochs: true is a boolean"),
    ({"methods": {"dm": {"iterations": True}}}, "methods.dm.iterations: true is a boolean"),
    ({"resources": {"default": {"cpu": True}}}, "resources.default.cpu: true is a boolean"),
    ({"teachers": {"arch": "convnet-d1-w16", "seed": True}}, "teachers.seed: true is a boolean"),
    ({"scores": {"lambda": True}}, "scores.lambda: true is a boolean"),
])
def test_booleans_are_not_numbers(tmp_path, changes, where):
    assert where in _validate(tmp_path, _tiny_text(**changes))


@pytest.mark.parametrize("changes, where", [
    ({"overrides": {"lr": float("inf")}}, "overrides.lr: inf is not a finite number"),
    ({"overrides": {"lr": [0.1, float("nan")]}}, "overrides.lr: item 1: nan is not a finite number"),
    ({"overrides": {"lr": "1e999"}}, "overrides.lr: inf is not a finite number"),
    ({"overrides": {"augment": {"cutmix": float("inf")}}}, "overrides.augment.cutmix: inf is not a finite"),
    ({"full": {"lr": float("-inf")}}, "full.lr: "),
    ({"methods": {"dm": {"lr_img": float("inf")}}}, "methods.dm.lr_img: inf is not a finite number"),
    ({"resources": {"default": {"cpu": float("inf")}}}, "resources.default.cpu: inf is not a finite number"),
])
def test_float_knobs_must_be_finite(tmp_path, changes, where):
    assert where in _validate(tmp_path, _tiny_text(**changes))


@pytest.mark.parametrize("changes, where", [
    ({"seeds": [99999999999999999999999]}, "seeds: seed 99999999999999999999999 is out of range"),
    ({"seeds": [-1]}, "seeds: seed -1 is out of range"),
    ({"full": {"epochs": 1, "seeds": [2**32]}}, "full.seeds: seed 4294967296 is out of range"),
    ({"teachers": {"arch": "convnet-d1-w16", "seed": 2**40}}, "teachers.seed: "),
])
def test_seeds_are_bounded(tmp_path, changes, where):
    assert where in _validate(tmp_path, _tiny_text(**changes))


def test_digits_takes_no_root(tmp_path):
    out = _validate(tmp_path, _tiny_text(datasets={"digits": {"root": "/nonexistent"}}))
    assert "datasets.digits.root: the 'digits' loader takes no root" in out


def test_non_utf8_and_binary_files_name_the_file(tmp_path):
    latin1 = _tiny_text().replace("name: tiny", "name: caf\u00e9").encode("latin-1")
    out = _validate(tmp_path, latin1)
    assert "s.yaml: is not UTF-8 text: byte 0xe9 on line 1" in out
    out = _validate(tmp_path, bytes(range(256)) * 4)
    assert "s.yaml: " in out


def test_deep_nesting_is_refused(tmp_path):
    out = _validate(tmp_path, "name: x\nipc: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "s.yaml: not valid YAML (line 2" in out and "nested more than" in out


def test_oversized_file_is_refused(tmp_path):
    out = _validate(tmp_path, _tiny_text() + "# padding\n" * 40_000)
    assert "s.yaml: is 4" in out and "at most" in out


def test_names_are_bounded(tmp_path):
    assert "name: 5000 characters; at most 100" in _validate(tmp_path, _tiny_text(name="a" * 5000))
    out = _validate(tmp_path, _tiny_text(methods={"m" * 5000: {"kind": "random"}}))
    assert "methods: the name 'mmmm" in out and "5000 characters; at most 100" in out


_BOMB = "[" + ", ".join(["x"] * 9) + "]"


def _bomb(levels: int = 9) -> str:
    """A 'billion laughs' mapping: level i holds nine aliases of level i-1 (9**levels values)."""
    lines = [f"l0: &a0 {_BOMB}"] + [f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines)


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_alias_bomb_in_plugin_params_is_refused_at_load(tmp_path, command):
    params = "\n".join("    " + line for line in _bomb().splitlines())
    text = _tiny_text().replace("  herding: {}\n", f"  plug:\n    kind: tests.plugin_methods:boom\n{params}\n")
    assert "plug:" in text
    out = _validate(tmp_path, text, command)
    assert "s.yaml: not valid YAML" in out and "expands to more than 100,000 values" in out


def test_sre2l_without_batchnorm_teacher_is_reported_by_validate(tmp_path):
    out = _validate(tmp_path, _tiny_text(methods={"sre2l": {"iterations": 1}}))
    assert "methods.sre2l: sre2l needs a BatchNorm teacher" in out and "'convnet-d1-w16' has none" in out
    ok = copy.deepcopy(TINY_SPEC)
    ok.update(methods={"sre2l": {"iterations": 1}}, teachers={"arch": "convnet-d3-bn"})
    load_spec(write_spec(tmp_path / "ok.yaml", ok))


def test_method_params_are_checked_against_the_data(tmp_path):
    out = _validate(tmp_path, _tiny_text(methods={"rded": {"factor": 3}, "dm": {"arch": "convnet-d4"}}))
    assert "methods.rded.factor: factor 3 does not divide the 8×8 images of digits (dataset 'digits')" in out
    assert "methods.dm.arch: arch 'convnet-d4': depth 4 pools a 8×8 image below 1×1" in out
    out = _validate(tmp_path, _tiny_text(ipc=[10], methods={"rded": {"factor": 2, "mipc": 5, "num_crop": 1}}))
    assert "methods.rded.num_crop: needs 40 patches per class" in out


def test_a_bad_arch_is_reported_once(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec.pop("teachers")
    spec.update(archs=["resnett18"], resources={"resnet18": {"cpu": 1}})
    out = _validate(tmp_path, yaml.safe_dump(spec))
    assert out.count("resnett18'") == 1 and "resources." not in out


def test_files_sets_are_read_at_validation(tmp_path):
    import torch

    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"mine": {"files": str(tmp_path / "sets" / "ipc{ipc}")}}
    folder = tmp_path / "sets" / "ipc1"
    folder.mkdir(parents=True)
    torch.save(torch.full((10, 1, 8, 8), float("nan")), folder / "images.pt")
    out = _validate(tmp_path, yaml.safe_dump(spec))
    assert "methods.mine.files: " in out and "images.pt: images contain 640 non-finite values" in out
    torch.save(torch.zeros(10, 3, 8, 8), folder / "images.pt")
    assert "images have shape (10, 3, 8, 8); expected (10, 1, 8, 8)" in _validate(tmp_path, yaml.safe_dump(spec))
    torch.save(torch.zeros(10, 1, 8, 8), folder / "images.pt")
    torch.save(torch.tensor(float("nan")), folder / "lr.pt")
    assert "lr.pt: lr must be one positive finite number; got nan" in _validate(tmp_path, yaml.safe_dump(spec))
    spec["methods"]["mine"]["normalized"] = False
    torch.save(torch.full((10, 1, 8, 8), 255.0), folder / "images.pt")
    (folder / "lr.pt").unlink()
    assert "pixel values in [0, 1]; found [255, 255]" in _validate(tmp_path, yaml.safe_dump(spec))


@pytest.mark.parametrize("name", ["rdm", "full", "syn", "", "a,b", "a\nb", "a\x00b", "a b", "a/b"])
def test_method_names_are_plain_and_not_an_arms_name(tmp_path, name):
    """An arm's name would show the arm's numbers under the method's name; a comma cannot be
    selected with --only; an empty name shows as '?'; control characters break every listing."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {name: {"kind": "random"}, "herding": {}}
    out = _validate(tmp_path, yaml.safe_dump(spec))
    assert "methods: method name" in out, out


@pytest.mark.parametrize("changes, where", [
    ({"overrides": {"lr": -1}}, "lr must be > 0, not -1"),
    ({"overrides": {"lr": 0}}, "lr must be > 0, not 0"),
    ({"overrides": {"lr": [0.1, 0.0]}}, "lr must be > 0"),
    ({"full": {"epochs": 1, "lr": -0.5}}, "lr must be > 0, not -0.5"),
])
def test_lr_must_be_positive(tmp_path, changes, where):
    assert where in _validate(tmp_path, _tiny_text(**changes))


def test_a_store_path_that_cannot_be_a_folder_is_refused_at_validate(tmp_path):
    (tmp_path / "afile").write_text("x")
    for store, why in [(str(tmp_path / "afile"), "it is a file, not a folder"),
                       (str(tmp_path / "afile" / "below"), "afile is a file"),
                       (str(tmp_path / "a\x00b"), "control character(s) '\\x00'")]:
        assert "store: " in (out := _validate(tmp_path, _tiny_text(store=store))) and why in out, out
    plan = runner.invoke(app, ["plan", str(write_spec(tmp_path / "ok.yaml", TINY_SPEC)), "--store", str(tmp_path / "afile")])
    assert plan.exit_code == 2 and "it is a file, not a folder" in plan.output and "Traceback" not in plan.output
