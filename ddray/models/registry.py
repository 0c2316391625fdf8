"""The model registry: a name grammar per family, `build_model`, `validate_arch`, `list_models`.

Families are tried in order; each owns a `parse(arch)` that says whether a name is its own, so
`convnet-d4-bn-w64` needs no table entry while `list_models` still shows the common names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ddray.errors import InputError, unknown

from .convnet import ConvNet, max_depth, parse_convnet


@dataclass(frozen=True)
class Family:
    name: str
    matches: Callable[[str], bool]
    build: Callable[[str, int, int, int], nn.Module]
    check: Callable[[str], str | None] = lambda arch: None  # extra validation; message or None


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


register_family(
    Family("convnet", lambda a: a.lower().split("-")[0] == "convnet" and parse_convnet(a) is not None,
           _build_convnet),
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


def _family(arch: str) -> Family | None:
    for family in _FAMILIES:
        if family.matches(arch):
            return family
    return None


def _problem(arch: str) -> str | None:
    """Why `arch` is not a buildable name, or None."""
    if not isinstance(arch, str) or not arch:
        return "arch must be a non-empty string"
    family = _family(arch)
    if family is None:
        return unknown("arch", arch, [name for name, _ in _LISTED] + ["timm:<name>"])
    return family.check(arch)


def validate_arch(arch: str, field: str | None = None) -> None:
    """Raise InputError (with a did-you-mean) when `arch` names no model."""
    problem = _problem(arch)
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
    validate_arch(arch)
    family = _family(arch)
    assert family is not None
    return family.build(arch, in_channels, num_classes, image_size)


def list_models() -> list[tuple[str, str]]:
    return list(_LISTED)


def convnet_max_depth(image_size: int) -> int:
    return max_depth(image_size)
