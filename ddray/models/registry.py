"""The model registry: a name grammar per family, `build_model`, `validate_arch`, `list_models`.

Families are tried in order; each owns a `parse(arch)` that says whether a name is its own, so
`convnet-d4-bn-w64` needs no table entry while `list_models` still shows the common names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ddray.errors import InputError, unknown

from .convnet import ConvNet, depth_problem, parse_convnet
from .resnet import resnet18, resnet50
from .timm_models import build_timm, check_timm


@dataclass(frozen=True)
class Family:
    name: str
    matches: Callable[[str], bool]
    build: Callable[[str, int, int, int], nn.Module]
    check: Callable[[str], str | None] = lambda arch: None  # extra validation; message or None
    fits: Callable[[str, int], str | None] = lambda arch, image_size: None  # image-size limits


_FAMILIES: list[Family] = []
# (name, description) shown by `ddray models`; the grammar accepts more than these.
_LISTED: list[tuple[str, str]] = []


def register_family(family: Family, listed: list[tuple[str, str]]) -> None:
    _FAMILIES.append(family)
    _LISTED.extend(listed)


def _build_convnet(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    cfg = parse_convnet(arch)
    assert cfg is not None
    return ConvNet(in_channels, num_classes, image_size, cfg, arch=arch)


def _convnet_fits(arch: str, image_size: int) -> str | None:
    cfg = parse_convnet(arch)
    assert cfg is not None
    return depth_problem(arch, cfg.depth, image_size)


register_family(
    Family("convnet", lambda a: a.lower().split("-")[0] == "convnet" and parse_convnet(a) is not None,
           _build_convnet, fits=_convnet_fits),
    [
        ("convnet", "DC ConvNet-D3: 3×[conv3×3 w128, instance norm, ReLU, avgpool2], linear"),
        *[(f"convnet-d{d}", f"DC ConvNet, depth {d}, width 128, instance norm") for d in range(1, 6)],
        ("convnet-d3-bn", "ConvNet-D3 with batch norm"),
        ("convnet-d4-bn", "ConvNet-D4 with batch norm"),
        ("convnet-d3-nn", "ConvNet-D3 without normalization"),
        ("convnet-d3-w64", "ConvNet-D3, width 64"),
        ("convnet-d3-w32", "ConvNet-D3, width 32"),
    ],
)

register_family(
    Family("resnet18", lambda a: a.lower() == "resnet18", lambda a, c, k, s: resnet18(c, k)),
    [("resnet18", "CIFAR-style ResNet-18: 3×3 stride-1 stem, no max-pool, batch norm")],
)
register_family(
    Family("resnet50", lambda a: a.lower() == "resnet50", lambda a, c, k, s: resnet50(c, k)),
    [("resnet50", "CIFAR-style ResNet-50 (bottleneck blocks), 3×3 stem, no max-pool")],
)
register_family(
    Family("timm", lambda a: a.lower().startswith("timm:"), build_timm, check_timm),
    [("timm:<name>", "any timm model, randomly initialized (never pretrained)")],
)


def _family(arch: str) -> Family | None:
    for family in _FAMILIES:
        if family.matches(arch):
            return family
    return None


def _problem(arch: str, image_size: int | None) -> str | None:
    """Why `arch` is not a buildable name (for this image size), or None."""
    if not isinstance(arch, str) or not arch:
        return "arch must be a non-empty string"
    family = _family(arch)
    if family is None:
        return unknown("arch", arch, [name for name, _ in _LISTED])
    return family.check(arch) or (family.fits(arch, image_size) if image_size is not None else None)


def validate_arch(arch: str, field: str | None = None, image_size: int | None = None) -> None:
    """Raise InputError (with a did-you-mean) when `arch` names no model.

    With `image_size`, also refuse combinations that cannot run (a ConvNet too deep for 8×8).
    """
    problem = _problem(arch, image_size)
    if problem:
        raise InputError(problem, path=field)


def model_family(arch: str) -> str:
    """'convnet', 'resnet18', 'resnet50' or 'timm': what per-arch defaults (ζ, batch, resources) key on."""
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
    return list(_LISTED)

