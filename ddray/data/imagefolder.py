"""ImageFolder trees (`root/train/<class>/...`, `root/val|test/<class>/...`): Tiny-ImageNet,
ImageNet subsets, anything exported as images.

Loading lists the files; pixels are decoded when a trial reads them (`FileSource`: PIL on a
thread pool, only the files asked for), and whole-split passes go through the node cache, so a
node decodes each split once. Tiny-ImageNet's own validation layout (`val/images/*` +
`val/val_annotations.txt`) is read as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .images import open_image
from .pixels import PixelSpec, labels_tensor
from .real_data import DatasetMeta, RealData
from .registry import DatasetLoader, register_dataset
from .sources import FileSource
from .split import Split

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
EVAL_SPLITS = ("val", "test")
TINY_ANNOTATIONS = "val_annotations.txt"


def _images_under(folder: Path, top: Path) -> list[Path]:
    """The image files below `folder`, following symlinks only where they stay inside `top` (the
    split folder) and never in a loop: a link back up the tree would count every image again under
    a bogus class, and a link out of the dataset reads files nobody listed. Refusals are ValueErrors."""
    top_real = os.path.realpath(top)
    seen: set[str] = set()
    out = []
    for here, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(here)
        if real in seen or real == top_real or os.path.commonpath([real, top_real]) != top_real:
            kind = "outside" if os.path.commonpath([real, top_real]) != top_real else "a loop in"
            raise ValueError(f"{here} is a symlink to {real}, {kind} {top}: replace it with the files")
        seen.add(real)
        for name in files:
            p = Path(here) / name
            if p.suffix.lower() not in EXTENSIONS:
                continue
            target = os.path.realpath(p)
            if os.path.commonpath([target, top_real]) != top_real:
                raise ValueError(f"{p} is a symlink to {target}, outside {top}: replace it with the file")
            if os.path.isfile(target):
                out.append(p)
    return sorted(out)


@register_dataset("imagefolder")
class ImageFolder(DatasetLoader):
    description = "ImageFolder tree: train/<class>/*.png|jpg and val/ (or test/) <class>/..."
    expected_files = ("train/<class>/*.png|jpg", "val/<class>/... (or test/)")
    options = ("image_size",)
    mean: ClassVar[tuple[float, ...] | None] = None  # None: computed from the train pixels, once per node
    std: ClassVar[tuple[float, ...] | None] = None

    # --- listing ----------------------------------------------------------------------------
    def _train(self, root: Path) -> tuple[list[str], list[list[Path]]]:
        if not (root / "train").is_dir():
            raise self.missing(root, ["train/"])
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        if not classes:
            raise self.error(f"{root / 'train'} has no class folders {self.expected_text()}")
        files = self._listed(root / "train", classes)
        empty = [c for c, f in zip(classes, files) if not f]
        if empty:
            raise self.error(f"{root / 'train'}: class folder(s) without images: {', '.join(empty[:5])}")
        return classes, files

    def _eval(self, root: Path, classes: list[str], **options: Any) -> tuple[list[Path], list[int]]:
        split = next((root / s for s in EVAL_SPLITS if (root / s).is_dir()), None)
        if split is None:
            raise self.missing(root, ["val/ (or test/)"])
        index = {c: i for i, c in enumerate(classes)}
        if (split / TINY_ANNOTATIONS).is_file():
            return self._tiny_val(split, index)
        folders = sorted(p.name for p in split.iterdir() if p.is_dir())
        if not folders:
            return self._flat_eval(split, index, **options)
        stray = [c for c in folders if c not in index]
        if stray:
            raise self.error(f"{split}: class folder(s) not in train/: {', '.join(stray[:5])}")
        paths, labels = [], []
        for c, found in zip(folders, self._listed(split, folders)):
            paths += found
            labels += [index[c]] * len(found)
        if not paths:
            raise self.error(f"{split} holds no images in class folders {self.expected_text()}")
        return paths, labels

    def _listed(self, split: Path, classes: list[str]) -> list[list[Path]]:
        try:
            return [_images_under(split / c, split) for c in classes]
        except ValueError as e:
            raise self.error(str(e)) from None

    def _flat_eval(self, split: Path, index: dict[str, int], **options: Any) -> tuple[list[Path], list[int]]:
        """Images directly in the eval folder, without class folders: a subclass may know their labels."""
        raise self.error(f"{split} holds no class folders {self.expected_text()}")

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

        try:
            with Image.open(first) as im:
                return im.size[1], im.size[0]
        except OSError as e:
            raise self.error(f"{first}: cannot decode ({e})") from e

    def decoder(self, split: str, size: tuple[int, int], image_size: int | None, **options: Any) -> Callable[[Path], np.ndarray]:
        """`path -> 3×H×W uint8` for the images of `split` ("train" or "test").

        The one place a loader's preprocessing lives: a subclass with other conventions (e.g.
        ImageNet's resize-shorter-side-then-center-crop for its val split) overrides it; its
        options are part of the dataset's identity, so they key the cache entries too.
        """
        from PIL import Image

        h, w = size
        resize = image_size is not None

        def decode(path: Path) -> np.ndarray:
            im = open_image(path)
            if resize and im.size != (w, h):
                im = im.resize((w, h), Image.BILINEAR)
            arr = np.asarray(im)
            if arr.shape != (h, w, 3):
                raise ValueError(f"is {arr.shape[1]}×{arr.shape[0]}, others {w}×{h}: set the 'image_size' option")
            return arr.transpose(2, 0, 1)

        return decode

    def _split(self, name: str, paths: list[Path], labels: list[int] | np.ndarray, size: tuple[int, int],
               image_size: int | None, **options: Any) -> Split:
        decode = self.decoder(name, size, image_size, **options)
        return Split(name, labels_tensor(labels), FileSource(paths, (3, *size), decode, self.error))

    def load(self, root: Path | None, image_size: int | None = None, **options: Any) -> RealData:
        """Lists the files (no pixel is decoded here): each split decodes what a trial reads of it."""
        root = self._root(root)
        classes, per_class = self._train(root)
        tr_paths = [p for files in per_class for p in files]
        tr_y = np.repeat(np.arange(len(classes)), [len(f) for f in per_class])
        te_paths, te_y = self._eval(root, classes, **options)
        size = self._size(image_size, tr_paths[0])
        spec = PixelSpec(self.mean, self.std) if self.mean is not None and self.std is not None else None
        return RealData(self.name, self._split("train", tr_paths, tr_y, size, image_size, **options),
                        self._split("test", te_paths, te_y, size, image_size, **options), classes, spec)

    def meta(self, root: Path | None, image_size: int | None = None, **options: Any) -> DatasetMeta:
        root = self._root(root)
        classes, per_class = self._train(root)
        h, w = self._size(image_size, per_class[0][0])
        return DatasetMeta(self.name, len(classes), (3, h, w), [len(f) for f in per_class], classes)


@register_dataset("tinyimagenet")
class TinyImageNet(ImageFolder):
    description = "Tiny-ImageNet-200 (64×64 RGB, 200 classes): the ImageFolder loader on 'tiny-imagenet-200'"
    root_hint = "the 'tiny-imagenet-200' folder (train/<wnid>/images, val/val_annotations.txt)"
