"""scikit-learn's bundled 8×8 digits: the embedded default for demos and tests (no files needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .pixels import channel_stats, labels_tensor, normalize
from .registry import DatasetLoader, register_dataset
from .types import RealData

# sklearn's usual 80/20 split: 1437 train / 360 test, stratified, fixed seed.
TEST_FRACTION = 0.2
SPLIT_SEED = 0
SCALE = 16.0  # digits pixels are integers 0..16


@register_dataset("digits")
class Digits(DatasetLoader):
    description = "scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), bundled"
    needs_root = False

    def load(self, root: Path | None, **options: Any) -> RealData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        x = bunch.data.reshape(-1, 1, 8, 8).astype(np.float32)
        y = bunch.target.astype(np.int64)
        tr_x, te_x, tr_y, te_y = train_test_split(
            x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
        )
        mean, std = channel_stats(tr_x, scale=SCALE)
        return RealData(
            name=self.name,
            train_x=normalize(tr_x, mean, std, scale=SCALE),
            train_y=labels_tensor(tr_y),
            test_x=normalize(te_x, mean, std, scale=SCALE),
            test_y=labels_tensor(te_y),
            classes=[str(c) for c in bunch.target_names],
            mean=mean,
            std=std,
        )
