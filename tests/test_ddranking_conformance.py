"""DD-Ranking's 75 leaderboard configs (and the RDED/EDC scripts) imported, validated and compared,
field by field, with their facts; the comparison is written to docs/ddranking.md as its conformance table.

The expected values below are read from the facts (tests/fixtures/ddranking-configs.tsv) by this
test's own small rules, not by the importer's code, so a mapping bug shows as a mismatch.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ddray.importers.ddranking_specs import import_ddranking
from ddray.spec import Spec, parse_spec
from ddray.spec_check import check_spec
from tests.conftest import REPO
from tests.ddranking_configs import facts, transforms, write_configs

DOC = REPO / "docs" / "ddranking.md"
BEGIN, END = "<!-- conformance:begin -->", "<!-- conformance:end -->"
LOADERS = {"CIFAR10": "cifar10", "CIFAR100": "cifar100", "TinyImageNet": "tinyimagenet", "ImageNet1K": "imagenet1k"}
SIZES = {"CIFAR10": 32, "CIFAR100": 32, "TinyImageNet": 64, "ImageNet1K": 224}


def _arch(name: str, tv: bool, size: int) -> str:
    if name.startswith("ConvNet-"):
        return "convnet-d" + name[8:].lower()
    if name == "ResNet-18-BN":
        return ("resnet18" if size <= 64 else "tv:resnet18") if tv else "resnet18-bn"
    return f"tv:{name}"


def expected(row: dict[str, str]) -> dict[str, object]:
    """What ddray must resolve for one config, from its facts (None: the knob at ddray's default)."""
    ds, method, ipc = row["dataset"], row["file"].split("/")[0], int(re.search(r"IPC(\d+)", row["file"])[1])
    size = SIZES[ds]
    stu, tea = (x == "True" for x in row["tv(stu/tea)"].split("/"))
    teachers = ast.literal_eval(row["teachers"]) if row["teachers"] != "None" else ([row["model"]] if row["sl_mode"] != "-" else [])
    epochs = int(row["epochs"])
    syn, real, bs = row["syn_bs/real_bs/bs"].split("/")
    train = {t["name"]: t.get("args", {}) for t in transforms(row["train_trans"]) or []}
    val = {t["name"]: t.get("args", {}) for t in transforms(row["val_trans"]) or []}
    resize = val.get("Resize", {}).get("size", size)
    eval_full = row["eval_full"] == "True" or (row["eval_full"] == "None" and ds.startswith("CIFAR"))
    aug_params = {} if row["aug_params"] in ("None", "DSA-std") else ast.literal_eval(row["aug_params"])
    return {
        "dataset": LOADERS[ds], "ipc": ipc, "arch": _arch(row["model"], stu, size),
        "teachers": [_arch(t, tea, size) for t in teachers], "seeds": 5,
        "labels": "hard" if not teachers else "hybrid" if len(teachers) > 1 else "soft",
        "soft_labels": "set" if row["sl_mode"] == "S" else "teacher",
        "loss": row["crit"] if teachers else "ce", "temperature": float(row["T"]) if row["crit"] in ("kl", "sce") else None,
        "dsa": row["aug"] == "dsa", "cutmix": aug_params.get("beta"), "mixup": aug_params.get("lambda"),
        "zca": row["zca"] == "True", "aug_for_hard": None if row["aug4hard"] == "-" else row["aug4hard"] == "True",
        "optimizer": row["opt"], "weight_decay": float(row["wd"]) if row["wd"] != "None" else 0.01,
        "schedule": row["sched"], "zeta": 2.0 if row["sched"] == "cosine" else None,
        "step_at": [500 / epochs] if row["sched"] == "step" else None,  # Tiny MTT's missing step_size: half, as the others
        "epochs": epochs, "checkpoint": "best", "eval_every": 20,
        "batch_size": int(syn if syn != "None" else bs), "full": {"batch_size": int(real)} if eval_full else {"from_teacher": True},
        "rrc_scale": train["RandomResizedCrop"]["scale"] if "RandomResizedCrop" in train else None,
        "flip": "RandomHorizontalFlip" in train, "random_crop_padding": train.get("RandomCrop", {}).get("padding"),
        "gaussian_noise": train.get("GaussianNoise", {}).get("sigma"),
        "test_resize": resize / size if resize != size and ds != "ImageNet1K" else None,
    }


def resolved(spec: Spec, arch: str) -> dict[str, object]:
    """The same fields as ddray resolves them for a spec's student."""
    p = spec.student_protocol(arch)
    a = p.augment
    tuple_or_none = (lambda v: list(v) if v else None)
    return {
        "dataset": next(iter(spec.datasets)), "arch": arch, "seeds": len(spec.seeds),
        "teachers": [t.arch for t in spec.teacher_list] if p.labels != "hard" else [],
        "labels": p.labels, "soft_labels": p.soft_labels,
        "loss": p.loss, "temperature": p.temperature if p.loss in ("kl", "sce") else None,
        "dsa": a.dsa, "cutmix": a.cutmix, "mixup": a.mixup, "zca": getattr(p, "zca", False),
        "aug_for_hard": getattr(p, "aug_for_hard", None), "optimizer": p.optimizer, "weight_decay": p.weight_decay,
        "schedule": p.schedule, "zeta": p.zeta if p.schedule == "cosine" else None,
        "step_at": list(p.step_at) if p.schedule == "step" else None, "epochs": p.epochs, "checkpoint": p.checkpoint,
        "eval_every": p.eval_every, "batch_size": p.batch_size,
        "full": {"from_teacher": True} if spec.full.from_teacher else {"batch_size": spec.full.overrides.get("batch_size")},
        "rrc_scale": tuple_or_none(a.rrc_scale) if a.rrc else None, "flip": a.flip,
        "random_crop_padding": getattr(a, "random_crop_padding", None), "gaussian_noise": getattr(a, "gaussian_noise", None),
        "test_resize": getattr(p, "test_resize", None),
    }


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddranking") / "eval"
    write_configs(root)
    return import_ddranking([root])


def _row_of(imports, file: str):
    for name, imps in imports.members.items():
        for imp in imps:
            if imp.file == file:
                return name, imp
    raise AssertionError(f"{file} is in no spec")


def test_every_config_imports_validates_and_matches_its_facts(imported):
    assert not imported.errors, "\n".join(imported.errors)
    specs = {}
    for name, d in imported.specs.items():
        specs[name] = parse_spec(d)
        check_spec(specs[name], data=False)
    rows, matched = [], 0
    for row in facts():
        name, imp = _row_of(imported, row["file"])
        spec = specs[name]
        want, got = expected(row), resolved(spec, spec.archs[0])
        got["ipc"] = imp.ipc if imp.ipc in spec.ipc else None
        bad = [f"{k}: {got.get(k)!r} != {v!r}" for k, v in want.items() if got.get(k) != v]
        matched += not bad
        fixes = "; ".join(f"{n.field}: {n.text.split(':')[0]}" for n in imp.notes if n.kind == "fixed")
        rows.append((row["file"], got["arch"], "+".join(got["teachers"]) or "-", f"{got['labels']}/{got['loss']}",
                     _aug(got), f"{got['optimizer']}/{got['schedule']}", str(got["epochs"]), str(got["batch_size"]),
                     name, fixes or "-", "✓" if not bad else "✗ " + "; ".join(bad)))
    _write_table(rows, matched)
    print(f"DD-Ranking conformance: {matched}/{len(rows)} configs match their facts")
    assert (matched, len(rows)) == (75, 75), [r for r in rows if not r[-1].startswith("✓")]


def _aug(got: dict[str, object]) -> str:
    parts = [k for k in ("dsa", "zca", "flip") if got[k]]
    parts += [f"{k} {got[k]:g}" for k in ("cutmix", "mixup", "random_crop_padding", "gaussian_noise", "test_resize") if got[k]]
    if got["rrc_scale"]:
        parts.append(f"rrc {got['rrc_scale']}")
    return ", ".join(parts) or "-"


def _write_table(rows: list[tuple[str, ...]], matched: int) -> None:
    from ddray.markdown import markdown_table

    head = ("file", "arch", "teachers", "labels/loss", "augmentation", "optimizer/schedule", "epochs", "batch", "spec",
            "fixed (0.2.0 bug)", "matches")
    table = (f"{matched}/{len(rows)} configs match their facts (written by tests/test_ddranking_conformance.py).\n\n"
             + markdown_table(head, [r for r in rows], left=len(head)))
    text = DOC.read_text()
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{BEGIN}\n{table}\n{END}{after}")


def test_imported_specs_plan_without_data(imported, tmp_path):
    """CIFAR, Tiny-ImageNet and ImageNet are not on this machine: every imported spec plans anyway."""
    from ddray.cli import app
    from typer.testing import CliRunner

    from ddray.importers.ddranking_specs import write_specs

    paths = write_specs(imported, tmp_path / "specs")
    assert len(paths) == len(imported.specs) and (tmp_path / "specs" / "ddranking-import.md").is_file()
    for p in paths:
        r = CliRunner().invoke(app, ["plan", str(p), "--json"])
        assert r.exit_code == 0, (p.name, r.output)


RDED_ARCH = {"CIFAR10": ["convnet-d3-bn"] * 3, "CIFAR100": ["convnet-d3-bn", "convnet-d3-bn", "convnet-d4-bn"],
             "TinyImageNet": ["convnet-d4-bn"] * 3, "ImageNet1K": ["resnet18-bn"] * 3}
RDED_BATCH = {"CIFAR10": [10, 50, 100], "CIFAR100": [20, 50, 200], "TinyImageNet": [100, 100, 200],
              "ImageNet1K": [20, 100, 200]}


@pytest.mark.parametrize("ds", list(RDED_ARCH))
def test_rded_scripts_settings_resolve_as_written(imported, ds):
    """ddranking-configs.md: ConvNet-3/4-BN or ResNet-18-BN, KL τ 20, CutMix + ShufflePatches(1) + RRC (1, 1)
    + flip, val Resize(s//7*8) + CenterCrop(s), AdamW 0.01 cosine, 300 epochs, per-IPC syn batch, lr 0.001."""
    for i, ipc in enumerate((1, 10, 50)):
        name, imp = _row_of(imported, f"RDED/{ds}/IPC{ipc}.yaml")
        spec = parse_spec(imported.specs[name])
        check_spec(spec, data=False)
        p = spec.student_protocol(spec.archs[0])
        size = SIZES[ds]
        assert spec.archs == [RDED_ARCH[ds][i]] and [t.arch for t in spec.teacher_list] == [RDED_ARCH[ds][i]]
        assert (p.labels, p.loss, p.temperature, p.optimizer, p.weight_decay, p.schedule, p.zeta, p.epochs, p.lr) == \
            ("soft", "kl", 20.0, "adamw", 0.01, "cosine", 2.0, 300, 0.001)
        assert p.batch_size == RDED_BATCH[ds][i] and p.aug_for_hard is False
        assert (p.augment.cutmix, p.augment.rrc, p.augment.flip, p.augment.patch_shuffle) == (1.0, False, True, None)
        want_resize = (size // 7 * 8) / size
        assert p.test_resize == (None if want_resize == 1 or ds == "ImageNet1K" else want_resize)
        assert any(n.field == "default_lr" and n.kind == "fixed" for n in imp.notes)


def test_edc_scripts_settings_resolve_as_written(imported):
    """EDC (ImageNet-1k): ResNet-18-BN; five teachers with AlexNet; mse_gt 1.0 / 0.025; CutMix + ShufflePatches(2)
    + RRC (0.5, 1) + flip; AdamW cosine; 300 epochs; batch 100."""
    name, _ = _row_of(imported, "EDC/ImageNet1K/IPC10.yaml")
    spec = parse_spec(imported.specs[name])
    check_spec(spec, data=False)
    p = spec.student_protocol(spec.archs[0])
    assert spec.archs == ["tv:resnet18"] and spec.ipc == [1, 10, 50]
    assert [t.arch for t in spec.teacher_list] == ["tv:resnet18", "tv:alexnet", "tv:mobilenet_v2",
                                                    "tv:shufflenet_v2_x0_5", "tv:efficientnet_b0"]
    assert (p.labels, p.loss, p.mse_weight, p.mse_gamma) == ("hybrid", "mse_gt", 1.0, 0.025)
    assert (p.augment.cutmix, p.augment.patch_shuffle, p.augment.patch_shuffle_strips, p.augment.rrc,
            p.augment.rrc_scale, p.augment.flip) == (1.0, 2, True, True, (0.5, 1.0), True)
    assert (p.optimizer, p.schedule, p.epochs, p.batch_size, p.lr) == ("adamw", "cosine", 300, 100, 0.001)
