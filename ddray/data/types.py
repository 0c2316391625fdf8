"""The shapes a dataset takes once loaded: `RealData` (pixels) and `DatasetMeta` (counts only).

`DatasetMeta` exists so spec validation (IPC <= smallest class) never has to decode pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class RealData:
    """A real train/test split on CPU: float32 normalized N×C×H×W pixels, int64 labels.

    Instances come from a per-process cache and are shared between callers: treat the tensors
    as read-only (copy before any in-place change).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    def meta(self) -> DatasetMeta:
        """The cheap description of this data (used when a loader has no faster way)."""
        counts = self.train_y.bincount(minlength=self.num_classes).tolist()
        return DatasetMeta(self.name, self.num_classes, self.image_shape, counts, list(self.classes))


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


@dataclass(frozen=True)
class DatasetEntry:
    """One registered loader as `ddray datasets` lists it."""

    name: str
    description: str
    default_root: str | None
    expected_files: tuple[str, ...]
    options: tuple[str, ...] = ()
    needs_root: bool = True  # False: the data ships with a package (digits), no root to give

    @property
    def root_text(self) -> str:
        """Where the data comes from, as `ddray datasets` says it."""
        if not self.needs_root:
            return "bundled"
        return self.default_root or "required"
