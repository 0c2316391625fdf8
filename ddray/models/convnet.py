"""DC-style ConvNet (DC/DSA/DM/MTT, DD-Ranking): D × [conv3×3 → norm → ReLU → avgpool 2×2] → linear.

Kept numerically the same as DC's `ConvNet`: instance norm is `GroupNorm(width, width)` with
affine weights, and 28×28 input is padded by 3 in the first conv so it pools like 32×32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ddray.errors import InputError

NORMS = {"in": "instance", "bn": "batch", "nn": "none"}
DEFAULT_DEPTH = 3
DEFAULT_WIDTH = 128
_TOKEN = re.compile(r"^(?:d(?P<depth>\d+)|w(?P<width>\d+)|(?P<norm>in|bn|nn))$")


@dataclass(frozen=True)
class ConvNetConfig:
    depth: int = DEFAULT_DEPTH
    width: int = DEFAULT_WIDTH
    norm: str = "instance"  # instance | batch | none


def parse_convnet(arch: str) -> ConvNetConfig | None:
    """`convnet[-d<D>][-bn|-nn|-in][-w<W>]` (suffixes in any order, each once) or None."""
    parts = arch.lower().split("-")
    if parts[0] != "convnet":
        return None
    depth, width, norm = DEFAULT_DEPTH, DEFAULT_WIDTH, "instance"
    seen: set[str] = set()
    for token in parts[1:]:
        m = _TOKEN.match(token)
        if m is None or m.lastgroup in seen:
            return None
        seen.add(m.lastgroup or "")
        if m.group("depth"):
            depth = int(m.group("depth"))
        elif m.group("width"):
            width = int(m.group("width"))
        else:
            norm = NORMS[m.group("norm")]
    if not 1 <= depth <= 8 or not 1 <= width <= 4096:
        return None
    return ConvNetConfig(depth, width, norm)


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    return nn.Identity()


def first_padding(image_size: int) -> int:
    """DC maps 28×28 to 32×32 by padding the first conv by 3; every other size pads by 1."""
    return 3 if image_size == 28 else 1


def feature_size(depth: int, image_size: int) -> int:
    """Spatial size after the blocks (0 when some pooling would shrink below 1×1)."""
    size = image_size + 2 * (first_padding(image_size) - 1)
    for _ in range(depth):
        size //= 2
    return size


class ConvNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, image_size: int, cfg: ConvNetConfig,
                 arch: str = "convnet"):
        super().__init__()
        problem = depth_problem(arch, cfg.depth, image_size)
        if problem:
            raise InputError(problem)
        size = feature_size(cfg.depth, image_size)
        layers: list[nn.Module] = []
        channels = in_channels
        for d in range(cfg.depth):
            pad = first_padding(image_size) if d == 0 else 1
            layers += [
                nn.Conv2d(channels, cfg.width, kernel_size=3, padding=pad),
                _norm(cfg.norm, cfg.width),
                nn.ReLU(inplace=True),
                nn.AvgPool2d(kernel_size=2, stride=2),
            ]
            channels = cfg.width
        self.features = nn.Sequential(*layers)
        self.num_features = cfg.width * size * size
        self.classifier = nn.Linear(self.num_features, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Flattened features before the classifier (what DM, herding and k-center compare)."""
        return torch.flatten(self.features(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


def max_depth(image_size: int) -> int:
    depth = 0
    while feature_size(depth + 1, image_size) >= 1:
        depth += 1
    return depth


def depth_problem(arch: str, depth: int, image_size: int) -> str | None:
    """The error for a ConvNet whose pooling would shrink the image below 1×1, or None."""
    if depth <= max_depth(image_size):
        return None
    return (f"arch '{arch}': depth {depth} pools a {image_size}×{image_size} image below 1×1; "
            f"use a depth of at most {max_depth(image_size)}")
