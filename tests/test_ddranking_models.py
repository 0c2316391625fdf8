"""DD-Ranking's model zoo in ddray: its ConvNet-BN and ResNet-18-BN (their state-dict names, so its
teacher checkpoints load), and hybrid teacher ensembles that mix them with torchvision's models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddray.data import build_real_data
from ddray.engine import load_teacher
from ddray.engine.labels import prepare_teachers, teacher_logits
from ddray.models import build_model


def _ddranking_resnet18_keys() -> list[str]:
    """State-dict keys of `ddranking.utils.networks.ResNet(BasicBlock, [2, 2, 2, 2], norm='batchnorm')`."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight", *[f"bn1.{k}" for k in bn]]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            keys += [f"{p}.conv1.weight", *[f"{p}.bn1.{k}" for k in bn], f"{p}.conv2.weight", *[f"{p}.bn2.{k}" for k in bn]]
            if layer > 1 and block == 0:
                keys += [f"{p}.shortcut.0.weight", *[f"{p}.shortcut.1.{k}" for k in bn]]
    return keys + ["classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("size,stem_stride", [(32, 1), (64, 2)])
def test_resnet18_bn_is_ddrankings_resnet18_bn(size, stem_stride):
    torch.manual_seed(0)
    net = build_model("resnet18-bn", 3, 10, size).eval()
    assert list(net.state_dict()) == _ddranking_resnet18_keys()
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # DD-Ranking's ResNet-18-BN at 10 classes
    assert net.conv1.stride == (stem_stride, stem_stride)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():  # DD-Ranking's forward: avg_pool2d(layer4, 4), flatten, classifier
        out = F.relu(net.bn1(net.conv1(x)))
        out = net.layer4(net.layer3(net.layer2(net.layer1(out))))
        ref = net.classifier(F.avg_pool2d(out, 4).flatten(1))
        assert torch.allclose(net(x), ref, atol=1e-6)


def test_convnet_bn_has_ddrankings_convnet_bn_layout():
    """ConvNet-3-BN / ConvNet-4-BN are convnet-d3-bn / convnet-d4-bn: DD-Ranking's ConvNet(net_norm='batchnorm')."""
    for depth in (3, 4):
        net = build_model(f"convnet-d{depth}-bn", 3, 10, 32 if depth == 3 else 64)
        keys = [k for k in net.state_dict() if not k.endswith("num_batches_tracked")]
        want = []
        for d in range(depth):  # [conv, BatchNorm2d, ReLU, AvgPool2d] per block
            want += [f"features.{4 * d}.weight", f"features.{4 * d}.bias"]
            want += [f"features.{4 * d + 1}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        assert keys == want + ["classifier.weight", "classifier.bias"]
        assert net.classifier.in_features == 128 * 4 * 4  # 32 → 4 (depth 3), 64 → 4 (depth 4)


def test_a_ddranking_checkpoint_loads_and_hybrid_ensembles_mix_it_with_torchvision_teachers(tmp_path):
    """EDC/G-VBSM style: DD-Ranking's ResNet-18-BN with torchvision's AlexNet and MobileNet-V2."""
    data = build_real_data("rgb64", torch.zeros(4, 3, 64, 64, dtype=torch.uint8), [0, 1, 2, 3],
                           torch.zeros(2, 3, 64, 64, dtype=torch.uint8), [0, 1], ["a", "b", "c", "d"],
                           mean=(0.5,) * 3, std=(0.25,) * 3)
    archs = ["resnet18-bn", "tv:alexnet", "tv:mobilenet_v2"]
    teachers = []
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        path = tmp_path / f"{i}.pt"
        torch.save(build_model(arch, 3, 4, 64).state_dict(), path)  # a state dict, as DD-Ranking saves its teachers
        teachers.append(load_teacher(path, arch, data))
    frozen = prepare_teachers(teachers, torch.device("cpu"))
    x = torch.randn(3, 3, 64, 64)
    hybrid = teacher_logits(frozen, x, hybrid=True)
    assert hybrid.shape == (3, 4) and torch.isfinite(hybrid).all()
    with torch.no_grad():
        norms = [torch.linalg.matrix_norm(t(x)) for t in frozen]
        target = torch.stack(norms).mean()
        ref = torch.stack([t(x) * (target / n) for t, n in zip(frozen, norms)]).mean(0)
    assert torch.allclose(hybrid, ref, atol=1e-5)
