"""CIFAR-10/100 in the python-pickle layout they are distributed in.

The batches are pickles, i.e. untrusted code if unpickled blindly: a restricted unpickler only
lets numpy's array reconstruction through.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .pixels import PixelSpec, labels_tensor
from .real_data import DatasetMeta, RealData
from .registry import DatasetLoader, register_dataset
from .sources import DecodedSource
from .split import Split

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys (the originals are python-2 byte-string keys)."""
    with open(path, "rb") as f:
        raw = _SafeUnpickler(f, encoding="bytes").load()
    if not isinstance(raw, dict):
        raise pickle.UnpicklingError(f"expected a dict, found {type(raw).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _names(values: list) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class CifarLoader(DatasetLoader):
    train_files: ClassVar[tuple[str, ...]] = ()
    test_file: ClassVar[str] = ""
    meta_file: ClassVar[str] = ""
    label_key: ClassVar[str] = "labels"
    names_key: ClassVar[str] = "label_names"
    num_classes: ClassVar[int] = 10
    mean: ClassVar[tuple[float, ...]] = ()
    std: ClassVar[tuple[float, ...]] = ()

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            return read_batch(path)
        except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as e:
            raise self.error(f"{path}: not a CIFAR python batch ({e})") from e

    def _labels(self, batch: dict[str, Any], path: Path) -> np.ndarray:
        if self.label_key not in batch:
            raise self.error(f"{path}: has no '{self.label_key}' entry")
        y = np.asarray(batch[self.label_key], dtype=np.int64)
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise self.error(f"{path}: labels must lie in [0, {self.num_classes})")
        return y

    def _images(self, files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for path in files:
            batch = self._read(path)
            data = np.asarray(batch.get("data"))
            y = self._labels(batch, path)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != y.shape[0]:
                raise self.error(f"{path}: 'data' must be N×3072 uint8 with one label per row, got {data.shape}")
            xs.append(data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32))
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    def _classes(self, root: Path) -> list[str]:
        names = self._read(root / self.meta_file).get(self.names_key)
        if names is None or len(names) != self.num_classes:
            raise self.error(f"{root / self.meta_file}: expected {self.num_classes} '{self.names_key}'")
        return _names(list(names))

    def _split(self, name: str, files: list[Path]) -> Split:
        """Labels now (unpickling the batches once), pixels when first read (unpickled again then)."""
        y = np.concatenate([self._labels(self._read(p), p) for p in files])
        source = DecodedSource((3, 32, 32), np.uint8, len(y), lambda: self._images(files)[0], files)
        return Split(name, labels_tensor(y), source)

    def load(self, root: Path | None, **options: Any) -> RealData:
        assert root is not None
        paths = self.require(root, self.expected_files)
        train = self._split("train", paths[: len(self.train_files)])
        test = self._split("test", [root / self.test_file])
        return RealData(self.name, train, test, self._classes(root), PixelSpec(self.mean, self.std))

    def meta(self, root: Path | None, **options: Any) -> DatasetMeta:
        assert root is not None
        paths = self.require(root, self.expected_files)
        y = np.concatenate([self._labels(self._read(p), p) for p in paths[: len(self.train_files)]])
        counts = np.bincount(y, minlength=self.num_classes).tolist()
        return DatasetMeta(self.name, self.num_classes, (3, 32, 32), counts, self._classes(root))


@register_dataset("cifar10")
class Cifar10(CifarLoader):
    description = "CIFAR-10, 32×32 RGB, 10 classes (python pickle batches)"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_file = "test_batch"
    meta_file = "batches.meta"
    expected_files = (*train_files, test_file, meta_file)
    root_hint = "the 'cifar-10-batches-py' folder of the python version"
    mean = (0.4914, 0.4822, 0.4465)  # DC/DSA/DM constants
    std = (0.2023, 0.1994, 0.2010)


@register_dataset("cifar100")
class Cifar100(CifarLoader):
    description = "CIFAR-100, 32×32 RGB, 100 fine classes (python pickle files)"
    train_files = ("train",)
    test_file = "test"
    meta_file = "meta"
    expected_files = ("train", "test", "meta")
    root_hint = "the 'cifar-100-python' folder of the python version"
    label_key = "fine_labels"
    names_key = "fine_label_names"
    num_classes = 100
    mean = (0.5071, 0.4866, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
