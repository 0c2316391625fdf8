"""`ddray plan` needs no data (a plan is a function of the spec and the registries), while
`ddray validate` and `ddray run` still check every root, checkpoint and distilled set: a copy
of each shipped ImageNet spec pointed at tiny ImageNet-shaped folders (the official flat val/
with its devkit for ImageNet-1k, class folders for ImageNette) validates offline."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from typer.testing import CliRunner

from ddray.cli import app
from tests.conftest import REPO, TINY_SPEC, no_traceback, write_spec
from tests.imagenet_files import WNIDS, devkit, imagenet_folder, sre2l_folder

runner = CliRunner()
GOLDEN = json.loads((REPO / "specs" / "golden-keys.json").read_text())


def _elsewhere(spec: dict, absent: str) -> dict:
    """The spec with every file it names moved to a folder that does not exist here."""
    spec = copy.deepcopy(spec)
    for ds in spec["datasets"].values():
        ds["root"] = f"{absent}/data"
    for name, m in spec["methods"].items():
        if "files" in m:
            m["files"] = f"{absent}/{name}/{{dataset}}/ipc{{ipc}}/"
    if spec.get("teachers", {}).get("checkpoint"):
        spec["teachers"]["checkpoint"] = f"{absent}/teacher.pth"
    return spec


@pytest.mark.parametrize("name", ["imagenet1k-rd3.yaml", "imagenette-rd3.yaml"])
def test_imagenet_specs_plan_without_their_data(tmp_path, name):
    shipped = yaml.safe_load((REPO / "specs" / name).read_text())
    spec = write_spec(tmp_path / name, _elsewhere(shipped, str(tmp_path / "absent")))
    result = runner.invoke(app, ["plan", str(spec), "--json", "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    stages = [t["stage"] for t in json.loads(result.output)["trials"]]
    assert sorted(stages) == sorted(stage for _, stage, _ in GOLDEN[name])  # the shipped plan's trials
    assert not (tmp_path / "absent").exists()
    strict = runner.invoke(app, ["validate", str(spec)])
    assert strict.exit_code == 2 and "datasets." in strict.output and no_traceback(strict)


@pytest.mark.parametrize("name", ["imagenet1k-rd3.yaml", "imagenette-rd3.yaml"])
def test_imagenet_specs_validate_against_imagenet_shaped_files(tmp_path, name):
    import torch
    import torchvision

    spec = yaml.safe_load((REPO / "specs" / name).read_text())
    ((dataset, options),) = spec["datasets"].items()
    flat = dataset == "imagenet1k"
    options["root"] = str(imagenet_folder(tmp_path / dataset, train_per_class=max(spec["ipc"]), flat_val=flat, small=True))
    if flat:  # the official val tarball, labelled by the devkit beside it
        devkit(tmp_path / dataset)
    for m in spec["methods"].values():
        if "files" in m:  # SRe2L's released layout: new000/ ... in class-index order, 224 px
            m["files"] = str(tmp_path / "released" / "{dataset}" / "ipc{ipc}")
            for ipc in spec["ipc"]:
                sre2l_folder(tmp_path / "released" / dataset / f"ipc{ipc}", WNIDS, ipc)
    if spec["teachers"].get("checkpoint"):  # torchvision's own file format, for these 3 classes
        spec["teachers"]["checkpoint"] = str(tmp_path / "resnet18.pth")
        torch.save(torchvision.models.resnet18(num_classes=len(WNIDS)).state_dict(), spec["teachers"]["checkpoint"])
    result = runner.invoke(app, ["validate", str(write_spec(tmp_path / name, spec))])
    assert result.exit_code == 0, result.output


def test_shipped_imagenet_specs_plan_as_shipped(tmp_path):
    for name in ("imagenet1k-rd3.yaml", "imagenette-rd3.yaml"):
        result = runner.invoke(app, ["plan", str(REPO / "specs" / name), "--json", "--store", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert sorted(t["key"] for t in json.loads(result.output)["trials"]) == sorted(k for k, _, _ in GOLDEN[name])


def test_plan_checks_the_registries_but_not_the_data_root(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["datasets"] = {"mine": {"loader": "imagefolder", "root": str(tmp_path / "no-such-root")}}
    path = write_spec(tmp_path / "s.yaml", spec)
    assert runner.invoke(app, ["plan", str(path), "--store", str(tmp_path / "st")]).exit_code == 0
    strict = runner.invoke(app, ["validate", str(path)])
    assert strict.exit_code == 2 and "no-such-root" in strict.output
    spec["archs"] = ["convnet-d3-bogus"]
    spec["methods"]["mine"] = {"files": str(tmp_path / "x"), "lr": "sett"}
    bad = runner.invoke(app, ["plan", str(write_spec(tmp_path / "bad.yaml", spec)), "--store", str(tmp_path / "st")])
    assert bad.exit_code == 2, bad.output
    assert "archs.0" in bad.output and "methods.mine.lr" in bad.output and "no-such-root" not in bad.output
