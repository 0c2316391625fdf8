"""RD³'s headline setting end to end at its real image size, on the CPU with tiny epochs: an
ImageNet-shaped JPEG tree (wnid folders, varied sizes, aspect ratios and colour modes) read at
224 px, a ResNet-18 student, soft labels from a hybrid of two torchvision checkpoints saved from
torchvision's own constructors, Acc(full, hard) from the pretrained ResNet-18 file
(`full.from_teacher`), an SRe2L-style released set through `files`, and LRS / ARS in the report —
through the `ddray` command a user types."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from ddray.store import Store
from tests.conftest import REPO, write_spec
from tests.imagenet_files import WNIDS, imagenet_folder, sre2l_folder

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # runs `ddray run` at 224 px: minutes on two cores

DDRAY = [sys.executable, "-m", "ddray.cli"]
K = len(WNIDS)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet-e2e")
    data = imagenet_folder(root / "imagenet", train_per_class=3, val_per_class=2)
    sre2l_folder(root / "sre2l" / "ipc1", WNIDS, ipc=1)
    weights = {}
    for arch, build in (("resnet18", torchvision.models.resnet18), ("mobilenet_v2", torchvision.models.mobilenet_v2)):
        torch.manual_seed(1)
        weights[arch] = root / f"{arch}-test.pth"
        torch.save(build(num_classes=K).state_dict(), weights[arch])  # the official files' keys, K outputs
    spec = {
        "name": "imagenet-e2e",
        "store": str(root / "store"),
        "datasets": {"imagenet1k": {"root": str(data)}},
        "methods": {"random": {}, "sre2l-release": {"files": str(root / "sre2l" / "ipc{ipc}")}},
        "ipc": [1],
        "archs": ["tv:resnet18"],
        "seeds": [0],
        "protocol": "rd3",
        "overrides": {"epochs": 1, "batch_size": 3},
        "teachers": [{"arch": "tv:resnet18", "checkpoint": str(weights["resnet18"])},
                     {"arch": "tv:mobilenet_v2", "checkpoint": str(weights["mobilenet_v2"])}],
        "full": {"from_teacher": True},
        "resources": {"default": {"cpu": 1}},
    }
    path = write_spec(root / "spec.yaml", spec)
    done = subprocess.run([*DDRAY, "validate", str(path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([*DDRAY, "run", str(path), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"root": root, "data": data, "weights": weights, "store": spec["store"], "spec": path}


def test_every_trial_is_stored_at_224_px(bench):
    rows = Store(bench["store"]).read_rows()
    assert sorted(rows.stage.value_counts().items()) == [("eval", 8), ("full", 1), ("synth", 1)]
    evals = rows[rows.stage == "eval"]
    assert set(zip(evals.arm, evals.labels, evals.aug)) == {
        ("rdm", "soft", True), ("rdm", "soft", False), ("syn", "hard", True), ("syn", "soft", True),
        ("syn", "soft", False)}
    assert evals.top1.between(0, 1).all() and (evals.status == "ok").all()


def test_acc_full_is_the_pretrained_file_on_the_224_px_val_split(bench):
    """The full arm's number is the checkpoint itself, evaluated on val prepared as the field does."""
    row = Store(bench["store"]).read_rows().query("stage == 'full'").iloc[0]
    assert row.epochs_run == 0
    model = torchvision.models.resnet18(num_classes=K)
    model.load_state_dict(torch.load(bench["weights"]["resnet18"], weights_only=True))
    prep = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    val = torchvision.datasets.ImageFolder(str(bench["data"] / "val"), prep, loader=lambda p: Image.open(p).convert("RGB"))
    x = torch.stack([img for img, _ in val])
    y = torch.tensor([label for _, label in val])
    with torch.no_grad():
        expected = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert row.top1 == pytest.approx(expected, abs=1e-6)


def test_the_report_scores_both_methods_and_says_where_acc_full_came_from(bench):
    text = subprocess.check_output([*DDRAY, "report", bench["store"], "--format", "json"], cwd=REPO, text=True)
    report = json.loads(text)
    scores = {r["method"]: r for r in report["tables"]["scores"]}
    assert set(scores) == {"random", "sre2l-release"}
    for r in scores.values():
        assert r["lrs_mean"] is not None and 0 <= r["lrs_mean"] <= 1
        assert r["ars_mean"] is not None and 0 <= r["ars_mean"] <= 1
    assert "full.from_teacher" in text
