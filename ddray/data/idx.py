"""MNIST-format idx-ubyte files (Fashion-MNIST, MNIST), plain or gzipped, parsed with numpy.

Debian's `dataset-fashion-mnist` package installs the gzipped files under
/usr/share/datasets/fashion-mnist, which is therefore the default root of `fashion-mnist`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .pixels import PixelSpec, labels_tensor
from .real_data import DatasetMeta, RealData
from .registry import DatasetLoader, register_dataset
from .sources import DecodedSource
from .split import Split

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _header(raw: bytes, path: Path, magic: int) -> tuple[int, ...]:
    """The dimensions in an idx header, after checking its magic number."""
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an idx file")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: magic number {found}, expected {magic} (not an idx-ubyte file of this kind?)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated idx header")
    return tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in an idx-ubyte file (shape from its header)."""
    with _open(path) as f:
        raw = f.read()
    dims = _header(raw, path, magic)
    offset = 4 + 4 * len(dims)
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: holds {len(raw) - offset} bytes of data, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx_shape(path: Path, magic: int) -> tuple[int, ...]:
    """Only the header: cheap even for a gzipped 47 MB image file."""
    with _open(path) as f:
        raw = f.read(16)
    return _header(raw, path, magic)


class IdxLoader(DatasetLoader):
    """Shared parser; subclasses set the class names and the normalization constants."""

    expected_files = FILES
    root_hint: ClassVar[str] = "the idx-ubyte files, each plain or .gz"
    classes: ClassVar[tuple[str, ...]] = tuple(str(i) for i in range(10))
    mean: ClassVar[tuple[float, ...]] = (0.5,)
    std: ClassVar[tuple[float, ...]] = (0.5,)

    def _paths(self, root: Path | None) -> list[Path]:
        assert root is not None
        return self.require(root, FILES, gz=True)

    def _labels(self, path: Path) -> np.ndarray:
        y = self._read(path, LABELS_MAGIC)
        if y.ndim != 1:
            raise self.error(f"{path}: labels must be 1-dimensional, got shape {y.shape}")
        if y.size and int(y.max()) >= len(self.classes):
            raise self.error(f"{path}: label {int(y.max())} out of range for {len(self.classes)} classes")
        return y

    def _read(self, path: Path, magic: int) -> np.ndarray:
        try:
            return read_idx(path, magic)
        except (ValueError, OSError, EOFError) as e:
            raise self.error(str(e)) from e

    def _shape(self, images: Path) -> tuple[int, ...]:
        try:
            return read_idx_shape(images, IMAGES_MAGIC)
        except (ValueError, OSError, EOFError) as e:
            raise self.error(str(e)) from e

    def _images(self, images: Path) -> np.ndarray:
        return self._read(images, IMAGES_MAGIC)[:, None]

    def _split(self, name: str, images: Path, labels: Path) -> Split:
        """Labels now, pixels when first read (the whole gzip stream at once: idx files do not seek)."""
        dims = self._shape(images)
        y = self._labels(labels)
        if len(dims) != 3 or dims[0] != y.shape[0]:
            raise self.error(f"{images}: {dims[0]} images of shape {dims[1:]} but {labels} has {y.shape[0]} labels")
        source = DecodedSource((1, dims[1], dims[2]), np.uint8, dims[0], lambda: self._images(images), [images])
        return Split(name, labels_tensor(y), source)

    def load(self, root: Path | None, **options: Any) -> RealData:
        tr_img, tr_lab, te_img, te_lab = self._paths(root)
        return RealData(self.name, self._split("train", tr_img, tr_lab), self._split("test", te_img, te_lab),
                        list(self.classes), PixelSpec(self.mean, self.std))

    def meta(self, root: Path | None, **options: Any) -> DatasetMeta:
        tr_img, tr_lab, _, _ = self._paths(root)
        dims = self._shape(tr_img)
        y = self._labels(tr_lab)
        counts = np.bincount(y, minlength=len(self.classes)).tolist()
        return DatasetMeta(self.name, len(self.classes), (1, dims[1], dims[2]), counts, list(self.classes))


@register_dataset("fashion-mnist")
class FashionMnist(IdxLoader):
    description = "Fashion-MNIST, 28×28 grayscale, 10 classes (idx-ubyte files)"
    default_root = "/usr/share/datasets/fashion-mnist"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    mean = (0.2861,)  # DC's constants
    std = (0.3530,)


@register_dataset("mnist")
class Mnist(IdxLoader):
    description = "MNIST, 28×28 grayscale digits, 10 classes (idx-ubyte files)"
    mean = (0.1307,)
    std = (0.3081,)
