"""Real data once loaded: `RealData` (two `Split`s), `build_real_data` (one over in-memory arrays)
and `DatasetMeta` (counts only).

`DatasetMeta` exists so spec validation (IPC <= smallest class) never has to decode pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from .pixels import PixelSpec, labels_tensor
from .sources import ArraySource
from .split import Split


@dataclass
class RealData:
    """A real train/test split: labels in memory, pixels in the stored dtype behind each `Split`.

    `pixels` turns a batch of stored pixels into normalized float32 network input on the batch's
    device. It is given by the loader (fixed constants: DC's for Fashion-MNIST and CIFAR) or, when
    `pixel_spec` is None, computed from the train pixels once per node (kept in the node cache), so
    a `syn` trial reads only those statistics. Instances come from a per-process cache and are
    shared: treat them as read-only.
    """

    name: str
    train: Split
    test: Split
    classes: list[str]
    pixel_spec: PixelSpec | None = None
    scale: float = 255.0  # what the computed statistics divide pixels by (digits: 16)

    @property
    def pixels(self) -> PixelSpec:
        """The normalization of this data (computing the train statistics on first use if needed)."""
        if self.pixel_spec is None:
            mean, std = self.train.stats(self.scale)
            self.pixel_spec = PixelSpec(mean, std, self.scale)
        return self.pixel_spec

    @property
    def mean(self) -> tuple[float, ...]:
        return self.pixels.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.pixels.std

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.shape

    def whitened(self, eps: float) -> RealData:
        """This data seen through the ZCA whitening fitted on its train split (`data/zca.py`):
        train, test and any subset of them are whitened by `pixels` instead of normalized."""
        from .zca import zca_pixels

        return replace(self, pixel_spec=zca_pixels(self.train, eps, self.scale, source=self.pixels))

    def train_images(self, idx: Tensor, device: torch.device | str = "cpu") -> Tensor:
        """Normalized float32 train images at `idx`, normalized on `device` (what methods select and match)."""
        return self.pixels(self.train.take(idx).to(device))

    def meta(self) -> DatasetMeta:
        """The cheap description of this data (used when a loader has no faster way)."""
        counts = self.train.labels.bincount(minlength=self.num_classes).tolist()
        return DatasetMeta(self.name, self.num_classes, self.image_shape, counts, list(self.classes))


def _array(x: Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    return a[:, None] if a.ndim == 3 else a


def build_real_data(name: str, train_x: Tensor | np.ndarray, train_y: np.ndarray | Tensor,
                    test_x: Tensor | np.ndarray, test_y: np.ndarray | Tensor, classes: Sequence[str],
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    scale: float = 255.0, normalized: bool = False) -> RealData:
    """A `RealData` over in-memory N×C×H×W pixels (a plugin's arrays, tests): kept as given, not copied.

    `mean`/`std` None: computed from the train pixels on first use. `normalized`: the pixels are
    float already normalized with (mean, std) (both required), used as they are.
    """
    if normalized and (mean is None or std is None):
        raise ValueError("normalized pixels need the mean and std they were normalized with")
    spec = None if mean is None or std is None else PixelSpec(
        tuple(float(m) for m in mean), tuple(float(s) for s in std), float(scale), prenormalized=normalized)
    return RealData(name, Split("train", labels_tensor(train_y), ArraySource(_array(train_x))),
                    Split("test", labels_tensor(test_y), ArraySource(_array(test_x))), list(classes), spec, float(scale))


@dataclass
class DatasetMeta:
    """What validation needs without the pixels: class count, image shape, train class sizes."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    class_counts: list[int]
    classes: list[str] = field(default_factory=list)

    @property
    def smallest_class(self) -> int:
        return min(self.class_counts) if self.class_counts else 0
