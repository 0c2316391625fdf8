"""The model registry: families of architecture names, `build_model`, `validate_arch`, `list_models`.

A family owns a grammar (`matches`), so `convnet-d4-bn-w64` or `tv:resnet50` needs no table entry
while `list_models` still shows the common names. Built-in families are tried in registration
order; an arch no family claims may be an installed `ddray.models` entry point, whose name is the
arch name and which points at a builder `fn(in_channels, num_classes, image_size) -> nn.Module`.
The naming mechanics are `ddray.registry.Registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ddray.errors import InputError, unknown
from ddray.registry import Registry, describe

from .convnet import ConvNet, depth_problem, parse_convnet
from .embedding import with_head_embed
from .resnet import DDRankingResNet18, resnet18, resnet50
from .timm_models import build_timm, check_timm
from .tv_models import build_tv, check_tv, fits_tv, tv_listing

ENTRY_POINT_GROUP = "ddray.models"

Builder = Callable[[str, int, int, int], nn.Module]  # (arch, in_channels, num_classes, image_size)


def _no_problem(arch: str) -> str | None:
    return None


def _any_size(arch: str, image_size: int) -> str | None:
    return None


@dataclass(frozen=True)
class ModelFamily:
    name: str
    matches: Callable[[str], bool]
    build: Builder
    check: Callable[[str], str | None] = _no_problem  # extra validation of a name; message or None
    fits: Callable[[str, int], str | None] = _any_size  # image-size limits; message or None
    listed: tuple[tuple[str, str], ...] = ()  # (name, description) rows `ddray models` shows
    zoo: Callable[[], list[tuple[str, str]]] | None = None  # every concrete name, when enumerable


def _as_family(name: str, obj: object, origin: str) -> ModelFamily:
    """The contract of a `ddray.models` plugin: a builder `fn(in_channels, num_classes, image_size)`
    returning an `nn.Module`; optional `fn.fits(image_size) -> str | None` refuses sizes."""
    if not callable(obj):
        raise InputError(f"{origin}: expected a model builder fn(in_channels, num_classes, image_size) "
                         f"-> torch.nn.Module, got {describe(obj)}")
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0] or origin
    fits = getattr(obj, "fits", None)
    return ModelFamily(name, lambda arch: arch == name, _checked_builder(obj, origin),
                       fits=(lambda arch, size: fits(size)) if callable(fits) else _any_size,
                       listed=((name, doc),))


def _checked_builder(fn: Callable[[int, int, int], object], origin: str) -> Builder:
    """A plugin's builder whose result is checked, and given `embed` when it has none."""

    def build(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
        model = fn(in_channels, num_classes, image_size)
        if not isinstance(model, nn.Module):
            raise InputError(f"{origin} returned {describe(model)}; expected a torch.nn.Module")
        if callable(getattr(model, "embed", None)):
            return model
        return with_head_embed(model, num_classes, origin)

    return build


models: Registry[ModelFamily] = Registry("arch", ENTRY_POINT_GROUP, _as_family)


def register_family(family: ModelFamily) -> ModelFamily:
    models.register(family.name, family)
    return family


def _build_convnet(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    cfg = parse_convnet(arch)
    assert cfg is not None
    return ConvNet(in_channels, num_classes, image_size, cfg, arch=arch)


def _convnet_fits(arch: str, image_size: int) -> str | None:
    cfg = parse_convnet(arch)
    assert cfg is not None
    return depth_problem(arch, cfg.depth, image_size)


register_family(ModelFamily(
    "convnet", lambda a: a.lower().split("-")[0] == "convnet" and parse_convnet(a) is not None,
    _build_convnet, fits=_convnet_fits,
    listed=(
        ("convnet", "DC ConvNet-D3: 3×[conv3×3 w128, instance norm, ReLU, avgpool2], linear"),
        *[(f"convnet-d{d}", f"DC ConvNet, depth {d}, width 128, instance norm") for d in range(1, 6)],
        ("convnet-d3-bn", "ConvNet-D3 with batch norm"),
        ("convnet-d4-bn", "ConvNet-D4 with batch norm"),
        ("convnet-d3-nn", "ConvNet-D3 without normalization"),
        ("convnet-d3-w64", "ConvNet-D3, width 64"),
        ("convnet-d3-w32", "ConvNet-D3, width 32"),
    )))
register_family(ModelFamily(
    "resnet18", lambda a: a.lower() == "resnet18", lambda a, c, k, s: resnet18(c, k),
    listed=(("resnet18", "CIFAR-style ResNet-18: 3×3 stride-1 stem, no max-pool, batch norm"),)))
register_family(ModelFamily(
    "resnet18-bn", lambda a: a.lower() == "resnet18-bn", lambda a, c, k, s: DDRankingResNet18(c, k, s),
    listed=(("resnet18-bn", "DD-Ranking's ResNet-18-BN (not torchvision's): resnet18 with a stride-2 stem at 64 px "
                            "and a `classifier` head, so DD-Ranking's teacher checkpoints load"),)))
register_family(ModelFamily(
    "resnet50", lambda a: a.lower() == "resnet50", lambda a, c, k, s: resnet50(c, k),
    listed=(("resnet50", "CIFAR-style ResNet-50 (bottleneck blocks), 3×3 stem, no max-pool"),)))
register_family(ModelFamily(
    "timm", lambda a: a.lower().startswith("timm:"), build_timm, check_timm,
    listed=(("timm:<name>", "any timm model, randomly initialized (never pretrained)"),)))
register_family(ModelFamily(
    "tv", lambda a: a.lower().startswith("tv:"), build_tv, check_tv, fits_tv,
    listed=(("tv:<name>", "any torchvision classification model (ImageNet stem), randomly initialized; "
                          "its state dict is torchvision's, so official checkpoints load as teachers"),),
    zoo=tv_listing))


def _family(arch: str) -> ModelFamily | None:
    """The built-in family whose grammar claims `arch`, else the plugin named `arch`, else None."""
    for family in models.builtins().values():
        if family.matches(arch):
            return family
    return models.plugin(arch)


def _problem(arch: str, image_size: int | None) -> str | None:
    """Why `arch` is not a buildable name (for this image size), or None."""
    if not isinstance(arch, str) or not arch:
        return "arch must be a non-empty string"
    try:
        family = _family(arch)
    except InputError as e:  # an installed plugin of that name is broken
        return str(e)
    if family is None:
        listed = {name for family in models.builtins().values() for name, _ in family.listed}
        return unknown("arch", arch, listed | set(models.entry_points()))
    return family.check(arch) or (family.fits(arch, image_size) if image_size is not None else None)


def validate_arch(arch: str, field: str | None = None, image_size: int | None = None) -> None:
    """Raise InputError (with a did-you-mean) when `arch` names no model.

    With `image_size`, also refuse combinations that cannot run (a ConvNet too deep for 8×8, a
    ViT-B/16 at 64 px).
    """
    problem = _problem(arch, image_size)
    if problem:
        raise InputError(problem, path=field)


def model_family(arch: str) -> str:
    """'convnet', 'resnet18', 'resnet50', 'timm', 'tv' or a plugin's name: what per-arch defaults
    (ζ, batch, resources) key on."""
    validate_arch(arch)
    family = _family(arch)
    assert family is not None
    return family.name


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A freshly initialized model (seed torch's RNG first for reproducible weights).

    Every model has `embed(x)`: the features before the final linear layer.
    """
    validate_arch(arch, image_size=image_size)
    family = _family(arch)
    assert family is not None
    return family.build(arch, in_channels, num_classes, image_size)


def list_models() -> list[tuple[str, str]]:
    """(name, description): the common names of the built-in families, then installed plugins."""
    rows = [row for family in models.builtins().values() for row in family.listed]
    return rows + [row for _, family in models.plugins() for row in family.listed]


def model_zoo() -> list[tuple[str, str]]:
    """(name, description) of every concrete name of the enumerable families (the `tv:` zoo)."""
    return [row for family in models.builtins().values() if family.zoo for row in family.zoo()]
