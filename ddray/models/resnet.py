"""CIFAR-style ResNet-18/50 (the students of RD³, SRe2L, RDED on small images).

3×3 stride-1 stem and no max-pool, so a 32×32 image keeps its resolution into the first stage;
global average pooling makes the same weights shape work for 8×8 up to 64×64 inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], blocks: tuple[int, ...],
                 in_channels: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = []
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            layers = []
            for j in range(count):
                stride = 2 if i > 0 and j == 0 else 1
                layers.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.fc = nn.Linear(in_planes, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        """Globally pooled features before `fc`."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


def resnet18(in_channels: int, num_classes: int) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes)


def resnet50(in_channels: int, num_classes: int) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes)


class DDRankingResNet18(ResNet):
    """DD-Ranking's own (non-torchvision) ResNet-18-BN, `ddranking.utils.networks.ResNet`.

    The CIFAR-style ResNet-18 above with DD-Ranking's two differences: the stem has stride 2 for
    64×64 input (Tiny-ImageNet), and the head is named `classifier`, so the state dicts of
    DD-Ranking's teacher checkpoints load as they are. DD-Ranking pools with `avg_pool2d(·, 4)`,
    which is global pooling at 32 and 64 px (its sizes) and fails at 224 px (7×7 left for a
    512-input linear layer); here pooling is global at every size.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int):
        super().__init__(BasicBlock, (2, 2, 2, 2), in_channels, num_classes)
        if image_size == 64:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.classifier = self.fc
        del self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))  # type: ignore[no-any-return]
