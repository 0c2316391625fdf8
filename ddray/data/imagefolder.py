"""ImageFolder trees (`root/train/<class>/...`, `root/val|test/<class>/...`): Tiny-ImageNet,
ImageNet subsets, anything exported as images.

Images are decoded by PIL on a thread pool (decoding releases the GIL) straight into one
preallocated uint8 N×3×H×W array; everything after decoding is vectorized. Tiny-ImageNet's own
validation layout (`val/images/*` + `val/val_annotations.txt`) is read as well.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .pixels import build_real_data
from .registry import DatasetLoader, register_dataset
from .types import DatasetMeta, RealData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
EVAL_SPLITS = ("val", "test")
TINY_ANNOTATIONS = "val_annotations.txt"


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


@register_dataset("imagefolder")
class ImageFolder(DatasetLoader):
    description = "ImageFolder tree: train/<class>/*.png|jpg and val/ (or test/) <class>/..."
    expected_files = ("train/<class>/*.png|jpg", "val/<class>/... (or test/)")
    options = ("image_size",)

    # --- listing ----------------------------------------------------------------------------
    def _train(self, root: Path) -> tuple[list[str], list[list[Path]]]:
        if not (root / "train").is_dir():
            raise self.missing(root, ["train/"])
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        if not classes:
            raise self.error(f"{root / 'train'} has no class folders {self.expected_text()}")
        files = [_images_under(root / "train" / c) for c in classes]
        empty = [c for c, f in zip(classes, files) if not f]
        if empty:
            raise self.error(f"{root / 'train'}: class folder(s) without images: {', '.join(empty[:5])}")
        return classes, files

    def _eval(self, root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
        split = next((root / s for s in EVAL_SPLITS if (root / s).is_dir()), None)
        if split is None:
            raise self.missing(root, ["val/ (or test/)"])
        index = {c: i for i, c in enumerate(classes)}
        if (split / TINY_ANNOTATIONS).is_file():
            return self._tiny_val(split, index)
        folders = sorted(p.name for p in split.iterdir() if p.is_dir())
        stray = [c for c in folders if c not in index]
        if stray:
            raise self.error(f"{split}: class folder(s) not in train/: {', '.join(stray[:5])}")
        paths, labels = [], []
        for c in folders:
            found = _images_under(split / c)
            paths += found
            labels += [index[c]] * len(found)
        if not paths:
            raise self.error(f"{split} holds no images in class folders {self.expected_text()}")
        return paths, labels

    def _tiny_val(self, split: Path, index: dict[str, int]) -> tuple[list[Path], list[int]]:
        paths, labels = [], []
        for line in (split / TINY_ANNOTATIONS).read_text().splitlines():
            parts = line.split("\t")
            if len(parts) < 2:
                continue
            name, wnid = parts[0], parts[1]
            if wnid not in index:
                raise self.error(f"{split / TINY_ANNOTATIONS}: class '{wnid}' not in train/")
            path = split / "images" / name
            if not path.is_file():
                path = split / name
            paths.append(path)
            labels.append(index[wnid])
        return paths, labels

    def _root(self, root: Path | None) -> Path:
        assert root is not None
        self.require(root, [])  # exists and is a folder
        return root

    # --- decoding ---------------------------------------------------------------------------
    def _size(self, image_size: Any, first: Path) -> tuple[int, int]:
        if image_size is not None:
            if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
                raise self.option_error("image_size", f"must be a positive integer, got {image_size!r}")
            return image_size, image_size
        from PIL import Image

        with Image.open(first) as im:
            return im.size[1], im.size[0]

    def _decode(self, paths: list[Path], size: tuple[int, int], resize: bool) -> np.ndarray:
        from PIL import Image

        h, w = size
        out = np.empty((len(paths), 3, h, w), dtype=np.uint8)

        def one(i: int) -> None:
            try:
                with Image.open(paths[i]) as im:
                    im = im.convert("RGB")
                    if resize and im.size != (w, h):
                        im = im.resize((w, h), Image.BILINEAR)
                    arr = np.asarray(im)
            except OSError as e:
                raise self.error(f"{paths[i]}: cannot decode ({e})") from e
            if arr.shape != (h, w, 3):
                raise self.error(
                    f"{paths[i]} is {arr.shape[1]}×{arr.shape[0]}, others {w}×{h}: set the 'image_size' option"
                )
            out[i] = arr.transpose(2, 0, 1)

        workers = min(16, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(paths))))
        return out

    def load(self, root: Path | None, image_size: int | None = None, **options: Any) -> RealData:
        root = self._root(root)
        classes, per_class = self._train(root)
        tr_paths = [p for files in per_class for p in files]
        tr_y = np.repeat(np.arange(len(classes)), [len(f) for f in per_class])
        te_paths, te_y = self._eval(root, classes)
        size = self._size(image_size, tr_paths[0])
        resize = image_size is not None
        tr_x = self._decode(tr_paths, size, resize)
        te_x = self._decode(te_paths, size, resize)
        return build_real_data(self.name, tr_x, tr_y, te_x, te_y, classes)

    def meta(self, root: Path | None, image_size: int | None = None, **options: Any) -> DatasetMeta:
        root = self._root(root)
        classes, per_class = self._train(root)
        h, w = self._size(image_size, per_class[0][0])
        return DatasetMeta(self.name, len(classes), (3, h, w), [len(f) for f in per_class], classes)


@register_dataset("tinyimagenet")
class TinyImageNet(ImageFolder):
    description = "Tiny-ImageNet-200 (64×64 RGB, 200 classes): the ImageFolder loader on 'tiny-imagenet-200'"
    root_hint = "the 'tiny-imagenet-200' folder (train/<wnid>/images, val/val_annotations.txt)"
