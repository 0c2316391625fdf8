"""How well a teacher labels the views a student trains on: its top-1 and its probability of the
true class (at τ 1, 4, 20) on the digits train split, clean and under RandomResizedCrop.

    PYTHONPATH=$PWD python docs/results/digits-soft/teacher_views.py /tmp/ddray-digits-soft/teacher.pt

Why: soft labels are only as good as the teacher *on the augmented view*; a teacher trained on
clean 8×8 digits has never seen a crop.
"""

import sys

import torch

from ddray.data import load_dataset
from ddray.engine import load_teacher
from ddray.engine.augment import random_resized_crop

VIEWS = {"clean": None, "crop 0.5-1": (0.5, 1.0), "crop 0.08-1": (0.08, 1.0)}
TAUS = (1.0, 4.0, 20.0)
REPEATS = 5  # crops drawn per image (seeds 0..4)


def main(path: str) -> None:
    torch.set_num_threads(1)
    data = load_dataset("digits")
    teacher = load_teacher(path, "convnet-d3-bn", data)
    x, y = data.train_x, data.train_y
    for name, scale in VIEWS.items():
        top1, p_true = 0.0, dict.fromkeys(TAUS, 0.0)
        for rep in range(REPEATS):
            xa = x if scale is None else random_resized_crop(x, torch.Generator().manual_seed(rep), scale)
            with torch.no_grad():
                z = teacher(xa)
            top1 += (z.argmax(1) == y).float().mean().item() / REPEATS
            for tau in TAUS:
                p_true[tau] += (z / tau).softmax(1).gather(1, y[:, None]).mean().item() / REPEATS
        probs = "  ".join(f"τ={tau:g} {p:.3f}" for tau, p in p_true.items())
        print(f"{name:12s} top-1 {100 * top1:5.1f}%   p(true class): {probs}")


if __name__ == "__main__":
    main(sys.argv[1])
