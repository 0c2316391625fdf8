"""A whole dataset in one file: `.pt` (a dict of tensors) or `.npz` with the same keys.

Keys: train_x, train_y, test_x, test_y; optional classes, mean, std. Pixels are N×C×H×W
(or N×H×W for one channel). How they are read:
- uint8: scaled by 1/255, then normalized with the file's mean/std (or train statistics);
- float with mean/std in the file: already normalized with them, kept as they are;
- float without mean/std: taken as [0, 1] pixels and normalized with train statistics.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .pixels import PixelSpec, labels_tensor
from .real_data import DatasetMeta, RealData
from .registry import DatasetLoader, register_dataset
from .sources import DecodedSource
from .split import Split

REQUIRED = ("train_x", "train_y", "test_x", "test_y")
SUFFIXES = (".pt", ".pth", ".npz")


def _numpy(t: Tensor) -> np.ndarray:
    """numpy has no bfloat16: such pixels are kept as float32 (what training casts them to anyway)."""
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


@register_dataset("tensors")
class Tensors(DatasetLoader):
    description = "one .pt (dict of tensors) or .npz file: train_x, train_y, test_x, test_y [, classes, mean, std]"
    expected_files = ("<file>.pt | <file>.npz with keys " + ", ".join(REQUIRED),)

    def _file(self, root: Path | None) -> Path:
        assert root is not None
        if not root.is_file():
            what = "does not exist" if not root.exists() else "is not a file"
            raise self.error(f"{root} {what} {self.expected_text()}")
        if root.suffix.lower() not in SUFFIXES:
            raise self.error(f"{root}: expected a .pt or .npz file {self.expected_text()}")
        return root

    def _read(self, path: Path, mmap: bool = False) -> dict[str, Any]:
        try:
            if path.suffix.lower() == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    raw = {k: z[k] for k in z.files}
            else:
                try:
                    raw = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
                except RuntimeError:
                    if not mmap:
                        raise
                    raw = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input problem
            raise self.error(f"{path}: cannot read ({type(e).__name__}: {e})") from e
        if not isinstance(raw, dict):
            raise self.error(f"{path}: expected a dict of tensors, found {type(raw).__name__}")
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise self.missing(path, missing)
        return raw

    def _pixels(self, value: Any, key: str, path: Path) -> Tensor:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
        if t.ndim == 3:
            t = t[:, None]
        if t.ndim != 4:
            raise self.error(f"{path}: {key} must be N×C×H×W (or N×H×W), got shape {tuple(t.shape)}")
        if not (t.dtype == torch.uint8 or t.dtype.is_floating_point):
            raise self.error(f"{path}: {key} must be uint8 or float, got {t.dtype}")
        return t

    def _labels(self, value: Any, key: str, n: int, path: Path) -> Tensor:
        y = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
        if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise self.error(f"{path}: {key} must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
        if y.shape[0] != n:
            raise self.error(f"{path}: {key} has {y.shape[0]} labels for {n} images")
        if y.numel() and int(y.min()) < 0:
            raise self.error(f"{path}: {key} has negative labels")
        return y

    def _classes(self, raw: dict[str, Any], ys: list[Tensor], path: Path) -> list[str]:
        top = max((int(y.max()) + 1 for y in ys if y.numel()), default=0)
        if "classes" in raw:
            classes = [str(c) for c in np.asarray(raw["classes"]).tolist()] if not isinstance(raw["classes"], list) \
                else [str(c) for c in raw["classes"]]
            if top > len(classes):
                raise self.error(f"{path}: label {top - 1} out of range for {len(classes)} classes")
            return classes
        return [str(i) for i in range(top)]

    def _stats(self, raw: dict[str, Any], channels: int, path: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        if "mean" not in raw and "std" not in raw:
            return None
        try:
            mean = tuple(float(v) for v in np.asarray(raw["mean"], dtype=np.float64).reshape(-1))
            std = tuple(float(v) for v in np.asarray(raw["std"], dtype=np.float64).reshape(-1))
        except KeyError as e:
            raise self.error(f"{path}: has {'mean' if 'mean' in raw else 'std'} without {e.args[0]}") from e
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise self.error(f"{path}: mean/std must have {channels} values (std > 0)")
        return mean, std

    def _source(self, path: Path, key: str, pixels: Tensor) -> DecodedSource:
        """The pixels of `key`, read again from the file when first needed (a .pt is memory-mapped)."""
        def decode() -> np.ndarray:
            return _numpy(self._pixels(self._read(path, mmap=True)[key], key, path))

        dtype = _numpy(torch.empty(0, dtype=pixels.dtype)).dtype
        return DecodedSource(pixels.shape[1:], dtype, pixels.shape[0], decode, [path])

    def load(self, root: Path | None, **options: Any) -> RealData:
        path = self._file(root)
        raw = self._read(path, mmap=True)
        tr_x, te_x = self._pixels(raw["train_x"], "train_x", path), self._pixels(raw["test_x"], "test_x", path)
        if tr_x.shape[1:] != te_x.shape[1:] or tr_x.dtype != te_x.dtype:
            raise self.error(f"{path}: train_x {tuple(tr_x.shape[1:])} {tr_x.dtype} and test_x "
                             f"{tuple(te_x.shape[1:])} {te_x.dtype} differ")
        tr_y = self._labels(raw["train_y"], "train_y", tr_x.shape[0], path)
        te_y = self._labels(raw["test_y"], "test_y", te_x.shape[0], path)
        classes = self._classes(raw, [tr_y, te_y], path)
        stats = self._stats(raw, tr_x.shape[1], path)
        scale = 255.0 if tr_x.dtype == torch.uint8 else 1.0
        train = Split("train", labels_tensor(tr_y), self._source(path, "train_x", tr_x))
        test = Split("test", labels_tensor(te_y), self._source(path, "test_x", te_x))
        del raw, tr_x, te_x  # a .npz decompressed them: the splits read them again when a trial needs them
        spec = None if stats is None else PixelSpec(*stats, scale=scale, prenormalized=scale == 1.0)
        return RealData(self.name, train, test, classes, spec, scale)

    def meta(self, root: Path | None, **options: Any) -> DatasetMeta:
        path = self._file(root)
        if path.suffix.lower() == ".npz":
            shape, raw = self._npz_meta(path)
        else:
            raw = self._read(path, mmap=True)
            shape = tuple(raw["train_x"].shape)
        shape = (shape[0], 1, *shape[1:]) if len(shape) == 3 else shape
        if len(shape) != 4:
            raise self.error(f"{path}: train_x must be N×C×H×W (or N×H×W), got shape {shape}")
        tr_y = self._labels(raw["train_y"], "train_y", shape[0], path)
        te_y = self._labels(raw["test_y"], "test_y", len(raw["test_y"]), path)
        classes = self._classes(raw, [tr_y, te_y], path)
        counts = torch.bincount(tr_y.to(torch.int64), minlength=len(classes)).tolist()
        return DatasetMeta(self.name, len(classes), (int(shape[1]), int(shape[2]), int(shape[3])), counts, classes)

    def _npz_meta(self, path: Path) -> tuple[tuple[int, ...], dict[str, Any]]:
        """train_x's shape from its .npy header, labels and class names read fully (small)."""
        try:
            with zipfile.ZipFile(path) as zf:
                names = {Path(n).stem: n for n in zf.namelist()}
                missing = [k for k in REQUIRED if k not in names]
                if missing:
                    raise self.missing(path, missing)
                with zf.open(names["train_x"]) as f:
                    version = np.lib.format.read_magic(f)
                    shape = np.lib.format._read_array_header(f, version)[0]  # noqa: SLF001
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in ("train_y", "test_y", "classes") if k in z.files}
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            raise self.error(f"{path}: cannot read ({type(e).__name__}: {e})") from e
        return tuple(int(s) for s in shape), raw
