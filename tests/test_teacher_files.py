"""Teachers from files ddray did not write: checkpoints saved from torchvision's and timm's own
constructors load through `load_teacher` into `tv:`/`timm:` archs and give the same logits; a file
that does not fit says what differs, naming the file, the arch and the class count."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from ddray.data import RealData, build_real_data
from ddray.engine import load_teacher
from ddray.errors import InputError

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def data_with(num_classes: int, channels: int = 3, size: int = 32) -> RealData:
    """A real (tiny) RealData of `num_classes` classes: load_teacher reads its shape and class count."""
    x = torch.zeros(2, channels, size, size)
    y = torch.tensor([0, 1])
    return build_real_data("imagenet-like", x, y, x, y, [f"c{i}" for i in range(num_classes)],
                           (0.0,) * channels, (1.0,) * channels, normalized=True)


def logits(model: torch.nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture(scope="module")
def resnet18_1000(tmp_path_factory):
    """torchvision's ResNet-18 at ImageNet's 1000 classes, saved the way its .pth downloads are."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.eval()
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BN is really checked
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("tv") / "resnet18-test.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_torchvision_imagenet_checkpoint_loads_as_is(resnet18_1000):
    path, model = resnet18_1000
    teacher = load_teacher(path, "tv:resnet18", data_with(1000))
    assert not teacher.training
    assert torch.equal(logits(teacher), logits(model))


def test_torchvision_checkpoint_of_the_2017_kind_loads(resnet18_1000, tmp_path):
    """torchvision's own ResNet files predate BatchNorm's `num_batches_tracked`: torch fills it in."""
    path, model = resnet18_1000
    old = {k: v for k, v in torch.load(path, weights_only=True).items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    assert torch.equal(logits(load_teacher(tmp_path / "old.pth", "tv:resnet18", data_with(1000))), logits(model))


def test_small_class_count_and_wrapped_files(tmp_path):
    torch.manual_seed(1)
    model = torchvision.models.resnet18(num_classes=5)
    state = model.state_dict()
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 90}, tmp_path / "ddp.pth")
    torch.save({"model": state, "optimizer": {"lr": torch.tensor(0.1)}}, tmp_path / "model.pt")
    for name in ("bare.pth", "ddp.pth", "model.pt"):
        assert torch.equal(logits(load_teacher(tmp_path / name, "tv:resnet18", data_with(5))), logits(model)), name


def test_gray_data_uses_an_rgb_checkpoint(tmp_path):
    torch.manual_seed(2)
    model = torchvision.models.mobilenet_v2(num_classes=4)
    torch.save(model.state_dict(), tmp_path / "mnv2.pth")
    teacher = load_teacher(tmp_path / "mnv2.pth", "tv:mobilenet_v2", data_with(4, channels=1))
    gray = X[:, :1]
    assert torch.allclose(logits(teacher, gray), logits(model, gray.expand(-1, 3, -1, -1)))


@pytest.mark.parametrize("suffix", [".safetensors", ".bin", ".pth"])
def test_timm_checkpoints_load_into_timm_archs(tmp_path, suffix):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=6)
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    teacher = load_teacher(path, "timm:resnet10t", data_with(6))
    assert list(teacher.state_dict()) == list(model.state_dict())  # bare timm keys, no wrapper prefix
    assert torch.equal(logits(teacher), logits(model))


def test_timm_teacher_saved_by_an_older_ddray_loads(tmp_path):
    """ddray used to wrap timm models (`net.conv1.weight`); stores keep such teachers."""
    torch.manual_seed(4)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=6)
    torch.save({f"net.{k}": v for k, v in model.state_dict().items()}, tmp_path / "old-ddray.pt")
    assert torch.equal(logits(load_teacher(tmp_path / "old-ddray.pt", "timm:resnet10t", data_with(6))), logits(model))


def test_wrong_class_count_names_file_arch_and_counts(resnet18_1000):
    path, _ = resnet18_1000
    with pytest.raises(InputError) as e:
        load_teacher(path, "tv:resnet18", data_with(10))
    assert str(e.value) == (
        f"{path}: teacher weights do not fit arch 'tv:resnet18' for 'imagenet-like' (3×32×32, 10 classes): "
        f"the file was made for 1000 classes, not 10: 2 shapes differ (fc.weight: file 1000×512, "
        f"model 10×512; fc.bias: file 1000, model 10)")


def test_another_arch_lists_missing_unexpected_and_shapes(resnet18_1000):
    path, _ = resnet18_1000
    with pytest.raises(InputError) as e:
        load_teacher(path, "tv:resnet34", data_with(1000))
    message = str(e.value)
    assert message.startswith(f"{path}: teacher weights do not fit arch 'tv:resnet34'")
    assert "1000 classes" in message
    assert "missing keys (layer1.2.conv1.weight, layer1.2.bn1.weight, layer1.2.bn1.bias, ... " in message
    assert "unexpected" not in message
    with pytest.raises(InputError) as e:
        load_teacher(path, "tv:mobilenet_v2", data_with(1000))
    assert "missing keys" in str(e.value) and "unexpected keys (conv1.weight, bn1.weight, bn1.bias, ..." in str(e.value)


def test_unreadable_files_are_input_errors_naming_the_file(tmp_path):
    data = data_with(5)
    with pytest.raises(InputError, match=r"missing\.pth: teacher checkpoint not found"):
        load_teacher(tmp_path / "missing.pth", "tv:resnet18", data)

    torch.save([torch.zeros(2), torch.ones(2)], tmp_path / "list.pt")
    with pytest.raises(InputError, match=r"list\.pt: teacher checkpoint is not a state dict of tensors \(found list"):
        load_teacher(tmp_path / "list.pt", "tv:resnet18", data)

    torch.save(torchvision.models.resnet18(num_classes=5), tmp_path / "whole-module.pt")  # a pickle of code
    with pytest.raises(InputError, match=r"whole-module\.pt: cannot read teacher checkpoint with "
                                         r"torch\.load\(weights_only=True\)"):
        load_teacher(tmp_path / "whole-module.pt", "tv:resnet18", data)

    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(InputError, match=r"garbage\.safetensors: cannot read teacher checkpoint as safetensors"):
        load_teacher(tmp_path / "garbage.safetensors", "tv:resnet18", data)


def _digits_teacher(tmp_path, num_classes: int = 10, fill: float | None = None):
    """A convnet-d1-w16 state dict for digits as ddray builds it, optionally with every float set to `fill`."""
    from ddray.data import load_dataset
    from ddray.models import build_model

    data = load_dataset("digits", None)
    c, h, _ = data.image_shape
    state = build_model("convnet-d1-w16", c, num_classes, h).state_dict()
    if fill is not None:
        state = {k: torch.full_like(v, fill) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tmp_path / "t.pth")
    return tmp_path / "t.pth"


@pytest.mark.parametrize("num_classes, fill, why", [
    (10, float("nan"), "holds NaN or infinite values in"),
    (10, float("inf"), "holds NaN or infinite values in"),
    (7, None, "10 classes"),
])
def test_a_teacher_checkpoint_is_loaded_at_validate(tmp_path, num_classes, fill, why):
    """An all-NaN teacher stored every student as "diverged", for good; a wrong class count failed every trial."""
    import copy

    from typer.testing import CliRunner

    from ddray.cli import app
    from tests.conftest import TINY_SPEC, write_spec

    spec = copy.deepcopy(TINY_SPEC)
    spec["teachers"] = {"arch": "convnet-d1-w16", "checkpoint": str(_digits_teacher(tmp_path, num_classes, fill))}
    result = CliRunner().invoke(app, ["validate", str(write_spec(tmp_path / "s.yaml", spec))])
    assert result.exit_code == 2, result.output
    assert "teachers.checkpoint: " in result.output and why in " ".join(result.output.split())
    good = copy.deepcopy(spec)
    (tmp_path / "good").mkdir()
    good["teachers"]["checkpoint"] = str(_digits_teacher(tmp_path / "good", 10, None))
    assert CliRunner().invoke(app, ["validate", str(write_spec(tmp_path / "g.yaml", good))]).exit_code == 0
