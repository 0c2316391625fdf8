"""`ddray import ddranking`: what a user sees — fixes of DD-Ranking's known bugs as warnings with
the value ddray used, every unmappable field as an error naming it (exit 2), specs where asked."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from ddray.cli import app
from tests.ddranking_configs import config, facts, rded_config

runner = CliRunner()


def _write(root, file: str, cfg: dict) -> None:
    p = root / file
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(cfg))


def _row(file: str) -> dict:
    return config(next(r for r in facts() if r["file"] == file))


def test_known_bugs_are_warnings_with_the_value_ddray_used(tmp_path):
    for file in ("SRe2L/TinyImageNet/IPC50.yaml", "SRe2L/TinyImageNet/IPC10.yaml", "MTT/TinyImageNet/IPC10.yaml",
                 "DATM/CIFAR10/IPC1.yaml", "G-VBSM/ImageNet1K/IPC50_Aug.yaml"):
        _write(tmp_path, file, _row(file))
    _write(tmp_path, "RDED/CIFAR10/IPC1.yaml", rded_config("CIFAR10", 0))
    r = runner.invoke(app, ["import", "ddranking", str(tmp_path), "--out", str(tmp_path / "specs")])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    for expected in ("SRe2L/TinyImageNet/IPC50.yaml: ipc: says 10 but the file is IPC50: ddray uses IPC 50",
                     "SRe2L/TinyImageNet/IPC10.yaml: teacher_model_names: missing",
                     "MTT/TinyImageNet/IPC10.yaml: step_size: missing (0.2.0's step scheduler asserts): ddray uses 500",
                     "DATM/CIFAR10/IPC1.yaml: random_data_format: tensor with soft_label_mode S",
                     "G-VBSM/ImageNet1K/IPC50_Aug.yaml: weight_decay: null",
                     "RDED/CIFAR10/IPC1.yaml: default_lr: 0.001"):
        assert expected in out, expected
    specs = sorted(p.name for p in (tmp_path / "specs").glob("*.yaml"))
    assert "ddranking-sre2l-tinyimagenet-ipc50.yaml" in specs
    spec = yaml.safe_load((tmp_path / "specs" / "ddranking-sre2l-tinyimagenet-ipc50.yaml").read_text())
    assert spec["ipc"] == [50] and spec["methods"]["SRe2L"]["files"] == "baselines/SRe2L/TinyImageNet/IPC{ipc}/"
    assert "| SRe2L/TinyImageNet/IPC50.yaml | ipc | fixed |" in (tmp_path / "specs" / "ddranking-import.md").read_text()


def test_a_field_ddray_cannot_map_is_an_error_naming_it(tmp_path):
    cfg = _row("D4M/CIFAR10/IPC1.yaml")
    cfg["custom_train_trans"].insert(1, {"name": "ColorJitter", "args": {"brightness": 0.4}})
    cfg["custom_train_trans"][0]["args"]["ratio"] = [0.5, 2.0]
    cfg["ema_decay"] = 0.99
    _write(tmp_path, "D4M/CIFAR10/IPC1.yaml", cfg)
    r = runner.invoke(app, ["import", "ddranking", str(tmp_path)])
    assert r.exit_code == 2
    out = " ".join(r.output.split())
    assert "D4M/CIFAR10/IPC1.yaml: custom_train_trans[1]: ColorJitter" in out
    assert "D4M/CIFAR10/IPC1.yaml: custom_train_trans[0]: RandomResizedCrop with ['ratio']" in out
    assert "D4M/CIFAR10/IPC1.yaml: ema_decay: a key ddray does not know" in out
    assert "name:" not in r.output  # no spec is printed


def test_a_path_outside_ddrankings_layout_is_an_error(tmp_path):
    _write(tmp_path, "configs/d4m.yaml", _row("D4M/CIFAR10/IPC1.yaml"))
    r = runner.invoke(app, ["import", "ddranking", str(tmp_path / "configs" / "d4m.yaml")])
    assert r.exit_code == 2 and "METHOD/DATASET/IPC<k>.yaml" in r.output


def test_one_spec_file_only_for_one_protocol_group(tmp_path):
    for file in ("DM/CIFAR10/IPC1.yaml", "DM/CIFAR10/IPC10.yaml", "DSA/CIFAR10/IPC1.yaml", "DSA/CIFAR10/IPC10.yaml"):
        _write(tmp_path / "eval", file, _row(file))
    out = tmp_path / "dm-dsa.yaml"
    r = runner.invoke(app, ["import", "ddranking", str(tmp_path / "eval"), "--out", str(out), "--sets", "/data/baselines"])
    assert r.exit_code == 0, r.output
    spec = yaml.safe_load(out.read_text())
    assert spec["methods"] == {"DM": {"files": "/data/baselines/DM/CIFAR10/IPC{ipc}/"},
                               "DSA": {"files": "/data/baselines/DSA/CIFAR10/IPC{ipc}/"}}
    assert spec["ipc"] == [1, 10] and spec["protocol"] == "ddranking-hard"
    assert runner.invoke(app, ["plan", str(out)]).exit_code == 0
    _write(tmp_path / "eval", "DC/CIFAR10/IPC1.yaml", _row("DC/CIFAR10/IPC1.yaml"))
    r = runner.invoke(app, ["import", "ddranking", str(tmp_path / "eval"), "--out", str(out)])
    assert r.exit_code == 2 and "give a folder" in " ".join(r.output.split())
