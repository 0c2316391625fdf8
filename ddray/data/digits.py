"""scikit-learn's bundled 8×8 digits: the embedded default for demos and tests (no files needed).

The CSV shipped inside scikit-learn is read directly: importing `sklearn.datasets` costs seconds
in every fresh Ray worker. The split is ddray's own (seeded, stratified, 1437/360) so it does
not move with scikit-learn versions.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from .real_data import RealData, build_real_data
from .registry import DatasetLoader, register_dataset

TEST_FRACTION = 0.2
SPLIT_SEED = 0
SCALE = 16.0  # digits pixels are integers 0..16
NUM_CLASSES = 10


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """(1797×64 pixels, labels) from scikit-learn's data file, or via load_digits as a fallback."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices; every class gives its share of ceil(N·f) test items.

    Shares are floor(n_c·f) plus one for the classes with the largest remainders, so the test
    size is exactly ceil(N·f), like scikit-learn's `train_test_split(stratify=y)`.
    """
    classes, counts = np.unique(y, return_counts=True)
    n_test = math.ceil(len(y) * test_fraction)
    exact = counts * test_fraction
    share = np.floor(exact).astype(int)
    order = np.argsort(-(exact - share), kind="stable")
    share[order[: n_test - share.sum()]] += 1
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, share)])
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


@register_dataset("digits")
class Digits(DatasetLoader):
    description = "scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), bundled"
    needs_root = False

    def load(self, root: Path | None, **options: Any) -> RealData:
        raw, y = _raw_digits()
        x = raw.reshape(-1, 1, 8, 8).astype(np.uint8)  # whole numbers 0..16: exact, 4× smaller than float
        if not np.array_equal(x, raw.reshape(x.shape)):
            x = raw.reshape(x.shape)
        train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
        classes = [str(c) for c in range(NUM_CLASSES)]
        return build_real_data(self.name, x[train], y[train], x[test], y[test], classes, scale=SCALE)
