"""ImageNet-shaped JPEG trees, the one generator the benchmarks and the tests write them with.

It lives here, not in `tests/`, because a benchmark is run from a checkout by hand
(`python -m benchmarks.memory`) and must not need the test tree (its conftest, pytest's path):
the tests import it from here, as they already import `benchmarks.gpu`, so the arrow points one way.

Three kinds of content, for three needs:
- `waves`: smooth sinusoid blobs that depend on the seed, so crops and resizes differ visibly
  (decoder and geometry tests);
- `tinted`: a class colour under noise, so a student trained for two epochs learns something
  (data-plane tests);
- `smooth`: a 4×4 random image with a class tint, upsampled, so it compresses like a photo and a
  tree of 20,000 images stays small (the memory benchmark).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CONTENTS = ("waves", "tinted", "smooth")


@dataclass(frozen=True)
class Jpeg:
    """One file to write: where, its (width, height), its class (tints `tinted`/`smooth`) and seed."""

    path: Path
    size: tuple[int, int]
    cls: int = 0
    seed: int = 0
    mode: str = "RGB"  # saved as: RGB, L (grayscale), CMYK


def pixels(content: str, size: tuple[int, int], cls: int, seed: int) -> np.ndarray:
    """H×W×3 uint8 pixels of one image of `content` (see the module doc)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if content == "waves":
        yy, xx = np.mgrid[0:h, 0:w]
        return np.stack([(127 + 120 * np.sin(xx / (7 + 5 * rng.random()) + c + rng.random() * 6)
                          * np.cos(yy / (9 + 5 * rng.random()))) for c in range(3)], axis=-1).clip(0, 255).astype(np.uint8)
    if content == "tinted":
        img = rng.integers(0, 55, (h, w, 3), dtype=np.uint8)
        img[..., cls % 3] += 200
        return img
    if content == "smooth":
        from PIL import Image

        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        small[..., cls % 3] = 200
        return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
    raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {content!r}")


def _write(args: tuple[Jpeg, str, int]) -> None:
    from PIL import Image

    jpeg, content, quality = args
    im = Image.fromarray(pixels(content, jpeg.size, jpeg.cls, jpeg.seed), "RGB")
    jpeg.path.parent.mkdir(parents=True, exist_ok=True)
    (im.convert(jpeg.mode) if jpeg.mode != "RGB" else im).save(jpeg.path, "JPEG", quality=quality)


def write_jpegs(images: Sequence[Jpeg], content: str = "waves", quality: int = 90, processes: int = 1) -> None:
    """Write `images`; `processes` > 1 writes them from a pool (a benchmark's tens of thousands)."""
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {', '.join(CONTENTS)}, not {content!r}")
    jobs = [(j, content, quality) for j in images]
    if processes <= 1:
        for job in jobs:
            _write(job)
        return
    from multiprocessing import Pool

    with Pool(min(processes, os.cpu_count() or 1)) as pool:
        pool.map(_write, jobs, chunksize=64)


def imagenet_tree(root: Path, wnids: Sequence[str], train: int, val: int, *,
                  widths: tuple[int, int], heights: tuple[int, int], content: str = "waves", seed: int = 0,
                  quality: int = 90, processes: int = 1) -> Path:
    """root/{train,val}/<wnid>/<wnid>_<i>.JPEG: `train` and `val` images per class, each of a width
    and height drawn from [lo, hi) of `widths`/`heights` (varied sizes and aspect ratios)."""
    rng = np.random.default_rng(seed)
    images = [Jpeg(root / split / wnid / f"{wnid}_{i}.JPEG",
                   (int(rng.integers(*widths)), int(rng.integers(*heights))), c, int(rng.integers(2**31)))
              for split, n in (("train", train), ("val", val)) for c, wnid in enumerate(wnids) for i in range(n)]
    write_jpegs(images, content, quality, processes)
    return root
