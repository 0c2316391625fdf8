"""ImageNet-1k and fast.ai's ImageNette / ImageWoof with the field's conventions.

Every image, train and val alike, is prepared the way ImageNet evaluation code has done it since
AlexNet's successors (torchvision's reference scripts, SRe2L's, RDED's and RD³'s post-evaluation
code): the shorter side resized to 256 (bilinear, antialiased), then the central 224×224 crop,
with ImageNet's mean and std. The `rdm` arm and the selection methods therefore see real images
exactly as the test split is seen; the protocol's own augmentation (RandomResizedCrop, flip,
CutMix) runs afterwards, per batch on the device. `image_size` (the crop) and `resize` (the
shorter side, default `image_size / 0.875`, i.e. 256 for 224) are the dataset's options, so a
64 px or 128 px variant is a different dataset to the keys and the node cache.

Grayscale, CMYK and palette JPEGs are converted to RGB; an image smaller than the crop is
resized up like any other; an undecodable file is an error that names it (`FileSource`).

The official validation tarball is flat (`val/ILSVRC2012_val_00000001.JPEG` ...). It is read
with its labels when they sit beside it in the root: the extracted devkit
(`ILSVRC2012_devkit_t12/`, whose `data/ILSVRC2012_validation_ground_truth.txt` holds ILSVRC ids
that `data/meta.mat` maps to wnids — not the sorted-wnid order) or Kaggle's
`LOC_val_solution.csv`. They are found, not named by an option, so where they live never enters a
trial's key (the root does not either). Without them the error says how to arrange the folder.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .imagefolder import EXTENSIONS, ImageFolder
from .images import open_image
from .real_data import DatasetMeta, RealData
from .registry import register_dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875  # 224 / 256: the crop is this fraction of the resized shorter side
DEFAULT_SIZE = 224
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
VAL_LABELS = ("ILSVRC2012_devkit_t12", "LOC_val_solution.csv")  # looked for in the root, in this order


@register_dataset("imagenet1k")
class ImageNet1k(ImageFolder):
    description = ("ImageNet-1k (ILSVRC2012): train/<wnid>/*.JPEG, val/<wnid>/ or the flat val/ with its devkit; "
                   "shorter side 256, center crop 224, ImageNet mean/std")
    expected_files = ("train/<wnid>/*.JPEG", "val/<wnid>/*.JPEG (or a flat val/ with ILSVRC2012_devkit_t12/ beside it)")
    root_hint = "the folder holding train/ and val/ (docs/imagenet.md)"
    options = ("image_size", "resize")
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    # --- geometry ---------------------------------------------------------------------------
    def _size(self, image_size: Any, first: Path) -> tuple[int, int]:
        size = DEFAULT_SIZE if image_size is None else image_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise self.option_error("image_size", f"must be a positive integer (the crop side), got {image_size!r}")
        return size, size

    def _geometry(self, image_size: Any, resize: Any) -> tuple[int, int]:
        """(crop side, shorter side before the crop) from the options, checked."""
        crop = self._size(image_size, Path())[0]
        if resize is None:
            return crop, round(crop / CROP_FRACTION)
        if isinstance(resize, bool) or not isinstance(resize, int) or resize < crop:
            raise self.option_error("resize", f"must be an integer >= image_size ({crop}), the shorter side "
                                              f"before the center crop; got {resize!r}")
        return crop, resize

    def decoder(self, split: str, size: tuple[int, int], image_size: int | None, resize: Any = None,
                **options: Any) -> Callable[[Path], np.ndarray]:
        """Resize the shorter side, center-crop: torchvision's `Resize(256)` + `CenterCrop(224)` on PIL images."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as tf

        crop, side = self._geometry(size[0], resize)

        def decode(path: Path) -> np.ndarray:
            im = open_image(path)  # L, CMYK, P, RGBA and 16-bit files alike
            im = tf.center_crop(tf.resize(im, side, interpolation=InterpolationMode.BILINEAR), [crop, crop])
            return np.asarray(im).transpose(2, 0, 1)

        return decode

    def load(self, root: Path | None, image_size: int | None = None, resize: Any = None, **options: Any) -> RealData:
        self._geometry(image_size, resize)  # a bad option fails before any listing
        return super().load(root, image_size, resize=resize, **options)

    def meta(self, root: Path | None, image_size: int | None = None, resize: Any = None, **options: Any) -> DatasetMeta:
        self._geometry(image_size, resize)  # `ddray validate` checks the options too
        return super().meta(root, image_size, **options)

    # --- the flat official val/ -------------------------------------------------------------
    def _flat_eval(self, split: Path, index: dict[str, int], **options: Any) -> tuple[list[Path], list[int]]:
        files = sorted(p for p in split.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not files:
            raise self.error(f"{split} holds no images and no class folders {self.expected_text()}")
        where = next((split.parent / n for n in VAL_LABELS if (split.parent / n).exists()), None)
        if where is None:
            raise self.error(
                f"{split} holds {len(files):,} images but no class folders: the official ImageNet val tarball is "
                "flat. Either move each image into val/<wnid>/ (as the widely used valprep.sh does), or put its "
                f"labels beside val/ in {split.parent}: the extracted devkit folder ILSVRC2012_devkit_t12/ (with "
                f"data/meta.mat and data/{GROUND_TRUTH}) or Kaggle's LOC_val_solution.csv")
        wnid_of = self._val_wnids(where)
        labels, unknown_wnid, unlabelled = [], [], []
        for f in files:
            wnid = wnid_of.get(f.stem)
            if wnid is None:
                unlabelled.append(f.name)
            elif wnid not in index:
                unknown_wnid.append(f"{f.name} ({wnid})")
            else:
                labels.append(index[wnid])
        for bad, what in ((unlabelled, f"have no label in {where}"), (unknown_wnid, "are of a class not in train/")):
            if bad:
                more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
                raise self.error(f"{len(bad):,} image(s) of {split} {what}: {', '.join(bad[:3])}{more}")
        return files, labels

    def _val_wnids(self, where: Path) -> dict[str, str]:
        """Image stem (`ILSVRC2012_val_00000001`) -> wnid, from the devkit or Kaggle's CSV."""
        return self._devkit(where) if where.is_dir() else self._kaggle_csv(where)

    def _devkit(self, folder: Path) -> dict[str, str]:
        data = folder / "data" if (folder / "data").is_dir() else folder
        meta, truth = data / "meta.mat", data / GROUND_TRUTH
        missing = [p.name for p in (meta, truth) if not p.is_file()]
        if missing:
            raise self.error(f"{data} lacks {', '.join(missing)} (the devkit's data/ folder)")
        try:
            from scipy.io import loadmat

            synsets = loadmat(meta, squeeze_me=True)["synsets"]
            leaf = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
            ids = [int(line) for line in truth.read_text().split()]
        except (OSError, ValueError, KeyError, TypeError, IndexError, NotImplementedError) as e:
            raise self.error(f"{data}: cannot read the devkit ({e})") from e
        bad = sorted({i for i in ids if i not in leaf})
        if bad:
            raise self.error(f"{truth}: ids {bad[:5]} are not leaf synsets of {meta}")
        # Line n is the n-th image, ILSVRC2012_val_{n:08d}; a subset of the folder keeps its numbers.
        return {f"ILSVRC2012_val_{n:08d}": leaf[i] for n, i in enumerate(ids, start=1)}

    def _kaggle_csv(self, path: Path) -> dict[str, str]:
        try:
            with path.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            return {r["ImageId"].strip(): r["PredictionString"].split()[0] for r in rows}
        except (OSError, KeyError, IndexError, AttributeError, UnicodeDecodeError, csv.Error) as e:
            raise self.error(f"{path}: not a LOC_val_solution.csv (ImageId,PredictionString rows; "
                             f"{type(e).__name__}: {e})") from e


@register_dataset("imagenette")
class ImageNette(ImageNet1k):
    description = "fast.ai's ImageNette (10 easy ImageNet classes): imagenette2's train/<wnid>/, val/<wnid>/; as imagenet1k"
    root_hint = "the 'imagenette2' folder (train/<wnid>/, val/<wnid>/)"


@register_dataset("imagewoof")
class ImageWoof(ImageNet1k):
    description = "fast.ai's ImageWoof (10 dog breeds of ImageNet): imagewoof2's train/<wnid>/, val/<wnid>/; as imagenet1k"
    root_hint = "the 'imagewoof2' folder (train/<wnid>/, val/<wnid>/)"
