"""`tv:<name>`: torchvision's own models (exact state-dict keys), a generic `embed`, and the image
sizes each can take, measured on the meta device. Tiny inputs (32 px, batch 2), few classes."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from ddray.errors import InputError
from ddray.models import build_model, model_family, model_zoo, validate_arch
from ddray.models.tv_models import _measured, sizes_rule

K = 5
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_state_dict_is_torchvisions_own():
    ours = build_model("tv:resnet18", 3, K, 32).state_dict()
    theirs = torchvision.models.resnet18(num_classes=K).state_dict()
    assert list(ours) == list(theirs)  # conv1.weight, bn1.running_mean, ..., fc.weight: no prefix
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert isinstance(build_model("tv:resnet18", 3, K, 32), torchvision.models.ResNet)


@pytest.mark.parametrize(("arch", "head", "width"), [
    ("tv:resnet18", "fc", 512),
    ("tv:mobilenet_v2", "classifier.1", 1280),
    ("tv:efficientnet_b0", "classifier.1", 1280),
    ("tv:shufflenet_v2_x0_5", "fc", 1024),
    ("tv:swin_t", "head", 768),
])
def test_embed_is_the_classifier_input(arch, head, width):
    torch.manual_seed(0)
    model = build_model(arch, 3, K, 32).eval()
    with torch.no_grad():
        features = model.embed(X)
        assert features.shape == (2, width)
        assert torch.allclose(model.get_submodule(head)(features), model(X), atol=1e-5)


def test_embed_of_a_convolutional_classifier_is_pooled():
    model = build_model("tv:squeezenet1_1", 3, K, 32).eval()  # classifier: 1×1 conv to K maps
    with torch.no_grad():
        assert model.embed(X).shape == (2, 512)


def test_gray_images_are_repeated_to_rgb():
    torch.manual_seed(0)
    model = build_model("tv:resnet18", 1, K, 32).eval()
    gray = X[:, :1]
    with torch.no_grad():
        assert torch.equal(model(gray), model(gray.expand(-1, 3, -1, -1)))
        assert model.embed(gray).shape == (2, 512)
    assert model.conv1.weight.shape[1] == 3  # still torchvision's weights: RGB checkpoints load
    with pytest.raises(InputError, match="takes RGB images.*2 channels"):
        build_model("tv:resnet18", 2, K, 32)


def test_auxiliary_heads_are_kept_but_not_returned():
    model = build_model("tv:googlenet", 3, K, 32).train()
    assert any(k.startswith("aux1.") for k in model.state_dict())  # official checkpoints have them
    assert isinstance(model(X), torch.Tensor)  # one logits tensor in training mode too


def test_deepcopy_keeps_embed_and_class():
    model = build_model("tv:mobilenet_v2", 1, K, 32).eval()
    twin = copy.deepcopy(model)  # what the EMA does
    assert type(twin) is type(model) and isinstance(twin, torchvision.models.MobileNetV2)
    with torch.no_grad():
        assert torch.equal(twin.embed(X[:, :1]), model.embed(X[:, :1]))


def test_names_and_family():
    assert model_family("tv:resnet18") == "tv"
    validate_arch("tv:vit_b_16")
    with pytest.raises(InputError, match="did you mean 'resnet18'"):
        validate_arch("tv:resnet19")
    with pytest.raises(InputError, match="tv:<torchvision model name>"):
        validate_arch("tv:")
    with pytest.raises(InputError, match="unknown torchvision classification model 'fasterrcnn_resnet50_fpn'"):
        validate_arch("tv:fasterrcnn_resnet50_fpn")  # detection models are not classifiers


def test_sizes_a_model_cannot_take_are_refused():
    validate_arch("tv:resnet18", image_size=32)
    validate_arch("tv:resnet18", image_size=8)
    validate_arch("tv:vit_b_16", image_size=224)
    with pytest.raises(InputError) as e:
        validate_arch("tv:vit_b_16", field="archs[2]", image_size=64)
    assert str(e.value) == ("archs[2]: arch 'tv:vit_b_16' cannot take 64×64 images (Wrong image height! "
                            "Expected 224 but got 64!); it takes 224×224 only")
    with pytest.raises(InputError, match=r"arch 'tv:alexnet' cannot take 32×32 images .*; it takes ≥ 63 px"):
        validate_arch("tv:alexnet", image_size=32)
    with pytest.raises(InputError, match="cannot take 64×64"):
        build_model("tv:vit_b_16", 3, K, 64)


def test_zoo_listing_says_which_sizes_suit_each():
    rows = dict(model_zoo())
    assert len(rows) >= 80 and "tv:resnet18" in rows and "tv:vit_b_16" in rows
    assert rows["tv:vit_b_16"].endswith("inputs: 224×224 only")
    assert rows["tv:resnet18"].endswith("inputs: any size") and "11.7M params" in rows["tv:resnet18"]
    assert rows["tv:alexnet"].endswith("inputs: ≥ 63 px")
    assert rows["tv:regnet_x_400mf"].endswith("(torchvision's documented minimum)")  # not meta-buildable


@pytest.mark.parametrize("name", ["resnet18", "vit_b_16", "squeezenet1_1", "alexnet"])
def test_recorded_sizes_match_a_fresh_measurement(name):
    """tv_sizes.json is what `python -m ddray.models.tv_models` measured; it must still hold."""
    assert _measured()[name] == sizes_rule(name)


def smallest_of_each_architecture() -> list[str]:
    """One model per torchvision module (resnet, vgg, vision_transformer, ...): its smallest."""
    from ddray.models.tv_models import zoo

    smallest: dict[str, tuple[int, str]] = {}
    for name in zoo():
        module = torchvision.models.get_model_builder(name).__module__
        params = next(iter(torchvision.models.get_model_weights(name))).meta["num_params"]
        smallest[module] = min(smallest.get(module, (params, name)), (params, name))
    return sorted(name for _, name in smallest.values())


@pytest.mark.slow
def test_every_architecture_has_a_head_that_runs_last():
    """The generic head rule holds across the zoo: on the meta device (no memory), the module
    `embed` hooks is the last Linear/Conv2d to run, and its output is the model's output."""
    from ddray.models.embedding import find_head
    from ddray.models.tv_models import _meta_model

    names = smallest_of_each_architecture()
    assert len(names) >= 17
    for name in names:
        model = _meta_model(name)
        if model is None:  # RegNet: checked on a real small one below
            continue
        head, order = find_head(model, 10), []
        hooks = [m.register_forward_hook(lambda m, a, out, n=n: order.append((n, out)))
                 for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        with torch.no_grad():
            out = model(torch.empty(1, 3, 224, 224, device="meta"))
        for h in hooks:
            h.remove()
        assert order[-1][0] == head, name
        assert out.shape == (1, 10), name
    regnet = build_model("tv:regnet_x_400mf", 3, K, 32).eval()
    with torch.no_grad():
        assert torch.allclose(regnet.fc(regnet.embed(X)), regnet(X), atol=1e-5)
