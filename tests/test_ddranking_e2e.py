"""DD-Ranking configs imported and run end to end on the CPU, one per family, at their real image
sizes on fixture data in the real formats: DM and DATM on CIFAR-10 (32 px pickles; hard labels,
DSA, a step schedule and the trained full-data arm; ZCA and the set's own soft labels), D4M on
Tiny-ImageNet (a 64 px train/<wnid>/images tree with val_annotations.txt; CutMix + crop + flip,
test_resize, Acc(full) from the teacher) and SRe2L on
ImageNet-1k (224 px JPEGs; a torchvision ResNet-18 teacher) — released sets in DD-Ranking's
baselines/<METHOD>/<DATASET>/IPC<k>/ layout, teachers in its teacher_models/<DATASET>/<name>/
layout. Only the scale is shrunk (1 seed, IPC 1, 2 epochs); every other knob is the import's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ddray.importers.ddranking_specs import import_ddranking
from tests.conftest import REPO
from tests.ddranking_configs import config, facts
from tests.imagenet_files import WNIDS, imagenet_folder
from tests.test_data import write_cifar_batch

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # four `ddray run`s, one at 224 px: minutes on two cores

DDRAY = [sys.executable, "-m", "ddray.cli"]
RNG = np.random.default_rng(0)


def _cifar10(root: Path, per_class: int = 2) -> None:
    root.mkdir(parents=True)
    labels = [c for c in range(10) for _ in range(per_class)]
    for i in range(1, 6):
        part = labels[i - 1::5]
        write_cifar_batch(root / f"data_batch_{i}", RNG.integers(0, 256, (len(part), 3072), dtype=np.uint8), part)
    write_cifar_batch(root / "test_batch", RNG.integers(0, 256, (20, 3072), dtype=np.uint8), labels)
    names = [n.encode() for n in "airplane automobile bird cat deer dog frog horse ship truck".split()]
    (root / "batches.meta").write_bytes(__import__("pickle").dumps({b"label_names": names}, protocol=2))


def _tiny(root: Path, wnids: list[str], per_class: int = 2) -> None:
    lines = []
    for c, wnid in enumerate(wnids):
        (root / "train" / wnid / "images").mkdir(parents=True)
        for i in range(per_class):
            img = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
            name = f"val_{c * per_class + i}.JPEG"
            (root / "val" / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[::-1]).save(root / "val" / "images" / name)
            lines.append(f"{name}\t{wnid}\t0\t0\t64\t64")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def _released(sets: Path, method: str, dataset: str, k: int, size: int, soft: bool, lr: float | None) -> None:
    d = sets / method / dataset / "IPC1"
    d.mkdir(parents=True)
    torch.save(torch.randn(k, 3, size, size), d / "images.pt")
    torch.save(torch.randn(k, k) if soft else torch.arange(k), d / "labels.pt")
    if lr is not None:
        torch.save(torch.tensor(lr), d / "lr.pt")


def _teacher(path: Path, arch: str, k: int, size: int) -> None:
    from ddray.models import build_model

    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(build_model(arch, 3, k, size).state_dict(), path)


def _imported_spec(root: Path, file: str, data_root: Path) -> Path:
    """The spec `ddray import ddranking` makes of one config, at the smallest scale."""
    row = next(r for r in facts() if r["file"] == file)
    cfg = {**config(row), "real_data_path": str(data_root), "teacher_dir": str(root / "teacher_models")}
    path = root / "eval" / file
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(cfg))
    imports = import_ddranking([path], sets=str(root / "baselines"))
    assert not imports.errors, imports.errors
    (name, spec), = imports.specs.items()
    spec.update(store=str(root / "store"), seeds=[0], ipc=[1], resources={"default": {"cpu": 1}})
    spec["overrides"].update(epochs=2, eval_every=1, lr=0.01)
    if not spec["full"].get("from_teacher"):
        spec["full"] = {**spec["full"], "epochs": 1}
    out = root / f"{name}.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def _run(spec: Path) -> str:
    done = subprocess.run([*DDRAY, "run", str(spec), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    store = yaml.safe_load(spec.read_text())["store"]
    rep = subprocess.run([*DDRAY, "report", store, "--format", "leaderboard"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0, rep.stderr
    return rep.stdout


def test_datm_on_cifar10_zca_and_its_own_soft_labels(tmp_path):
    _cifar10(tmp_path / "data" / "cifar-10-batches-py")
    _released(tmp_path / "baselines", "DATM", "CIFAR10", 10, 32, soft=True, lr=0.01)
    _teacher(tmp_path / "teacher_models" / "CIFAR10" / "ConvNet-3" / "ckpt_best.pt", "convnet-d3", 10, 32)
    spec = _imported_spec(tmp_path, "DATM/CIFAR10/IPC1.yaml", tmp_path / "data")
    p = yaml.safe_load(spec.read_text())["overrides"]
    assert p["zca"] is True and p["soft_labels"] == "set" and p["loss"] == "sce"
    board = _run(spec)
    assert "DATM,,false," in board and ",cifar10,1,soft," in board


def test_dm_on_cifar10_hard_labels_dsa_and_the_full_data_arm(tmp_path):
    _cifar10(tmp_path / "data" / "cifar-10-batches-py")
    _released(tmp_path / "baselines", "DM", "CIFAR10", 10, 32, soft=False, lr=None)
    spec = _imported_spec(tmp_path, "DM/CIFAR10/IPC1.yaml", tmp_path / "data")
    s = yaml.safe_load(spec.read_text())
    assert s["protocol"] == "ddranking-hard" and "teachers" not in s and s["full"]["batch_size"] == 256
    board = _run(spec)
    assert "DM,,false," in board and ",cifar10,1,hard," in board


def test_d4m_on_tiny_imagenet_at_64_px(tmp_path):
    wnids = WNIDS[:3]
    _tiny(tmp_path / "data", wnids)
    _released(tmp_path / "baselines", "D4M", "TinyImageNet", 3, 64, soft=False, lr=None)
    _teacher(tmp_path / "teacher_models" / "TinyImageNet" / "ResNet-18-BN" / "ckpt_best.pt", "resnet18", 3, 64)
    spec = _imported_spec(tmp_path, "D4M/TinyImageNet/IPC1.yaml", tmp_path / "data")
    s = yaml.safe_load(spec.read_text())
    assert s["overrides"]["test_resize"] == 1.125 and s["full"] == {"from_teacher": True}
    assert ",tinyimagenet,1,soft," in _run(spec)


def test_sre2l_on_imagenet_at_224_px(tmp_path):
    import torchvision

    data = imagenet_folder(tmp_path / "imagenet", train_per_class=1, val_per_class=1, wnids=WNIDS[:2])
    _released(tmp_path / "baselines", "SRe2L", "ImageNet1K", 2, 224, soft=False, lr=None)
    ckpt = tmp_path / "teacher_models" / "ImageNet1K" / "ResNet-18-BN" / "ckpt_best.pt"
    ckpt.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), ckpt)
    spec = _imported_spec(tmp_path, "SRe2L/ImageNet1K/IPC1.yaml", data)
    assert yaml.safe_load(spec.read_text())["archs"] == ["tv:resnet18"]
    assert ",imagenet1k,1,soft," in _run(spec)
