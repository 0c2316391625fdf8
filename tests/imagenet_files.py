"""ImageNet-shaped files in the real formats, written by the tests: wnid class folders of JPEGs of
varied sizes, aspect ratios and colour modes (RGB, grayscale, CMYK, one smaller than the crop),
the official flat val/ with the devkit's `meta.mat` + ground-truth file or Kaggle's CSV, and
SRe2L-style distilled folders (`new000/`...). The pixels are `benchmarks/jpeg_trees.py`'s (`waves`):
one generator of JPEG trees for the tests and the benchmarks; the layouts are ImageNet's own here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.jpeg_trees import Jpeg, write_jpegs

# Real wnids (ImageNette's first ones) and, for the devkit, their ILSVRC2012 ids: not sorted-wnid order.
WNIDS = ["n01440764", "n02102040", "n02979186"]
ILSVRC_IDS = {"n01440764": 449, "n02102040": 217, "n02979186": 482}
SIZES = [(300, 240), (240, 360), (500, 375), (180, 200), (64, 48)]  # (w, h); the last is smaller than the crop
MODES = ["RGB", "RGB", "L", "CMYK", "RGB"]


def jpeg(path: Path, size: tuple[int, int], mode: str, seed: int) -> None:
    """A JPEG whose content depends on `seed` (smooth blobs, so crops and resizes differ visibly)."""
    write_jpegs([Jpeg(path, size, seed=seed, mode=mode)])


def imagenet_folder(root: Path, train_per_class: int = 4, val_per_class: int = 2, flat_val: bool = False,
                    wnids: list[str] = WNIDS, small: bool = False) -> Path:
    """root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG (or the official flat val/); `small`:
    train images of 40×30 px, quick to write when only their count matters."""
    images = []
    for c, wnid in enumerate(wnids):
        for i in range(train_per_class):
            k = (c + i) % len(SIZES)
            images.append(Jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", (40, 30) if small else SIZES[k],
                               seed=len(images) + 1, mode=MODES[k]))
    n = 0
    for i in range(val_per_class):
        for c, wnid in enumerate(wnids):  # interleaved, as in the official numbering
            n += 1
            k = (c + 2 * i + 1) % len(SIZES)
            name = f"ILSVRC2012_val_{n:08d}.JPEG"
            images.append(Jpeg(root / "val" / ("" if flat_val else wnid) / name, SIZES[k], seed=1000 + n, mode=MODES[k]))
    write_jpegs(images)
    return root


def val_wnids(wnids: list[str] = WNIDS, val_per_class: int = 2) -> list[str]:
    """The wnid of each val image in file order (ILSVRC2012_val_00000001 first)."""
    return [w for _ in range(val_per_class) for w in wnids]


def devkit(folder: Path, wnids: list[str] = WNIDS, val_per_class: int = 2) -> Path:
    """ILSVRC2012_devkit_t12/data/{meta.mat, ILSVRC2012_validation_ground_truth.txt} as the devkit has them."""
    from scipy.io import savemat

    data = folder / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    synsets = np.zeros((len(wnids) + 1, 1), dtype=[(f, object) for f in fields])
    for i, w in enumerate(wnids):
        synsets[i, 0] = (ILSVRC_IDS[w], w, f"class {w}", "", 0, np.zeros((0, 0)), 0, 1300)
    synsets[-1, 0] = (1001, "n00001740", "entity", "", 2, np.array([[1, 2]]), 18, 0)  # a non-leaf synset
    savemat(data / "meta.mat", {"synsets": synsets})
    ids = [ILSVRC_IDS[w] for w in val_wnids(wnids, val_per_class)]
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{i}\n" for i in ids))
    return folder / "ILSVRC2012_devkit_t12"


def kaggle_csv(path: Path, wnids: list[str] = WNIDS, val_per_class: int = 2) -> Path:
    lines = ["ImageId,PredictionString"]
    lines += [f"ILSVRC2012_val_{n:08d},{w} 10 12 200 180 {w} 4 4 60 60"
              for n, w in enumerate(val_wnids(wnids, val_per_class), start=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def sre2l_folder(root: Path, wnids: list[str], ipc: int, size: int = 224, by_wnid: bool = False) -> Path:
    """A released distilled set: class folders new000/ ... (class-index order) or named by wnid, of JPEGs."""
    write_jpegs([Jpeg(root / (wnid if by_wnid else f"new{c:03d}") / f"class{c:03d}_id{i:03d}.jpg", (size, size),
                      seed=10_000 + 100 * c + i) for c, wnid in enumerate(wnids) for i in range(ipc)])
    return root
