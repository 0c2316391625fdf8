"""Model registry: every registered model builds and runs on every dataset shape ddray ships."""

from __future__ import annotations

import pytest
import torch

from ddray.errors import InputError
from ddray.models import build_model, list_models, model_family, validate_arch
from ddray.models.convnet import parse_convnet

SHAPES = [(1, 8), (1, 28), (3, 32), (3, 64)]  # digits, (fashion-)mnist, cifar, tiny-imagenet
TIMM_SMALL = "timm:resnet10t"


def registered_archs() -> list[str]:
    names = [name for name, _ in list_models() if "<" not in name]  # not the timm:/tv: placeholders
    return [*names, "convnet-d2-bn-w32", TIMM_SMALL]


def _fits(arch: str, image_size: int) -> bool:
    cfg = parse_convnet(arch)
    return cfg is None or not (image_size == 8 and cfg.depth > 3)


@pytest.mark.parametrize("arch", registered_archs())
def test_every_model_runs_on_every_shape(arch):
    torch.manual_seed(0)
    for channels, size in SHAPES:
        if not _fits(arch, size):
            with pytest.raises(InputError, match=f"'{arch}'.*8×8"):
                build_model(arch, channels, 7, size)
            continue
        model = build_model(arch, channels, 7, size).eval()
        batch = 2 if size <= 32 else 1  # keeps ResNet-50 at 64×64 cheap on a 2-core CI runner
        x = torch.randn(batch, channels, size, size)
        with torch.no_grad():
            logits = model(x)
            assert logits.shape == (batch, 7), (arch, channels, size)
            assert torch.isfinite(logits).all()
            if size <= 32:  # embed is the same code path at every size; check it where it is cheap
                features = model.embed(x)
                assert features.ndim == 2 and features.shape[0] == batch


def test_convnet_matches_dc_layout():
    model = build_model("convnet", 1, 10, 28)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and convs[0].padding == (3, 3) and convs[1].padding == (1, 1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == 3 and norms[0].num_groups == 128 and norms[0].affine
    assert model.classifier.in_features == 128 * 4 * 4  # 28 -> 32 -> 16 -> 8 -> 4
    assert build_model("convnet-d3", 1, 10, 8).classifier.in_features == 128  # 8 -> 4 -> 2 -> 1
    bn = build_model("convnet-d4-bn-w64", 3, 10, 32)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 4
    assert bn.classifier.in_features == 64 * 2 * 2
    nn_ = build_model("convnet-nn", 3, 10, 32)
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) for m in nn_.modules())


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_model("convnet-d3", 3, 10, 32)
    torch.manual_seed(3)
    b = build_model("convnet-d3", 3, 10, 32)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_families():
    assert model_family("convnet") == "convnet"
    assert model_family("convnet-d4-bn") == "convnet"
    assert model_family("resnet18") == "resnet18"
    assert model_family("resnet50") == "resnet50"
    assert model_family(TIMM_SMALL) == "timm"


@pytest.mark.parametrize(("bad", "hint"), [
    ("resnet19", "did you mean 'resnet18'"),
    ("convet-d3", "did you mean 'convnet-d3'"),
    ("convnet-d3-bn-bn", "unknown arch"),
    ("timm:resnet10", "did you mean 'resnet10t'"),
    ("timm:", "timm:<model name>"),
])
def test_bad_names_suggest(bad, hint):
    with pytest.raises(InputError, match=hint):
        validate_arch(bad)
    with pytest.raises(InputError, match=hint):
        build_model(bad, 3, 10, 32)


def test_validate_with_field_and_image_size():
    validate_arch("convnet-d3", image_size=8)
    with pytest.raises(InputError, match=r"^archs\[1\]: arch 'convnet-d4'.*at most 3"):
        validate_arch("convnet-d4", field="archs[1]", image_size=8)


# --- plugins: a really installed distribution's `ddray.models` entry points -----------------------
MODEL_PLUGIN = '''
    from torch import nn


    def tiny_mlp(in_channels, num_classes, image_size):
        """A one-hidden-layer MLP (no embed of its own)."""
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 16), nn.ReLU(),
                             nn.Linear(16, num_classes))


    def small_only(in_channels, num_classes, image_size):
        """An MLP for images of at most 16 px."""
        return tiny_mlp(in_channels, num_classes, image_size)
    small_only.fits = lambda size: None if size <= 16 else f"at most 16 px, not {size}"


    def not_a_module(in_channels, num_classes, image_size):
        return "a model"


    def headless(in_channels, num_classes, image_size):
        return nn.Flatten()


    weights = [1, 2, 3]
'''


def test_model_plugins_from_entry_points(install_dist):
    from ddray.models import ENTRY_POINT_GROUP

    install_dist("ddray-mlps", {ENTRY_POINT_GROUP: {
        "tiny-mlp": "dd_mlp_plugin:tiny_mlp", "small-only": "dd_mlp_plugin:small_only",
        "not-a-module": "dd_mlp_plugin:not_a_module", "headless": "dd_mlp_plugin:headless",
        "weights": "dd_mlp_plugin:weights",
    }}, {"dd_mlp_plugin": MODEL_PLUGIN})

    model = build_model("tiny-mlp", 1, 7, 8).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        features = model.embed(x)  # given by ddray: the input of the last Linear with 7 outputs
        assert features.shape == (2, 16)
        assert torch.allclose(model[3](features), model(x))
    assert list(model.state_dict()) == ["1.weight", "1.bias", "3.weight", "3.bias"]  # no wrapper prefix
    assert model_family("tiny-mlp") == "tiny-mlp"
    assert ("tiny-mlp", "A one-hidden-layer MLP (no embed of its own).") in list_models()

    validate_arch("small-only", image_size=16)
    with pytest.raises(InputError, match=r"^archs\[0\]: at most 16 px, not 32"):
        validate_arch("small-only", field="archs[0]", image_size=32)
    with pytest.raises(InputError, match=r"entry point 'not-a-module' \(dd_mlp_plugin:not_a_module\) returned str"):
        build_model("not-a-module", 1, 7, 8)
    with pytest.raises(InputError, match=r"'headless'.*no embed\(\) and no final nn.Linear"):
        build_model("headless", 1, 7, 8)
    with pytest.raises(InputError, match=r"'weights'.*expected a model builder.*got list"):
        validate_arch("weights")
    with pytest.raises(InputError, match="did you mean 'tiny-mlp'"):
        validate_arch("tiny-mpl")
