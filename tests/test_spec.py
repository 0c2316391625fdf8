"""Spec validation: every user mistake is one `path.to.field: message` line and exit 2."""

from __future__ import annotations

import copy

import pytest
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
