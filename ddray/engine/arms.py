"""The training sets of the arms: `rdm` (class-balanced random real subset) and the held-out
validation split used to search the learning rate (the full arm is `teacher.train_teacher`).

Index draws come from the class table of `engine/pools.py`, shuffled by a CPU generator seeded by
the trial seed, so the same seed picks the same images on every machine, and the rdm subset of a
trial never depends on the method.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddray.data import RealData
from ddray.engine.pools import ClassPools
from ddray.errors import InputError


def _trial_generator(seed: int) -> torch.Generator:
    """Seeded by the trial seed itself (no stream): the stored rdm subsets were drawn this way."""
    return torch.Generator().manual_seed(int(seed))


def random_subset(y: Tensor, num_classes: int, ipc: int, seed: int) -> Tensor:
    """`ipc` indices of each class, class-major (all of class 0, then class 1, ...).

    Raises InputError when a class has fewer than `ipc` examples.
    """
    if ipc < 1:
        raise InputError(f"ipc must be >= 1, got {ipc}", "ipc")
    pools = ClassPools.shuffled(y, num_classes, _trial_generator(seed))
    short = torch.nonzero(pools.counts < ipc, as_tuple=True)[0]
    if short.numel():
        c = int(short[0])
        raise InputError(f"class {c} has {int(pools.counts[c])} training examples, fewer than ipc={ipc}", "ipc")
    return pools.index[:, :ipc].flatten()


def holdout_split(y: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(kept, held-out) indices of the real train split, stratified by class, both sorted.

    Each class gives round(fraction · n_c) examples (at least one, never all) to the held-out part,
    so every class is validated and every class can still be trained on.
    """
    if not 0 < fraction < 1:
        raise InputError(f"fraction must be in (0, 1), got {fraction}", "val_fraction")
    y = y.detach().cpu().long()
    num_classes = int(y.max()) + 1 if y.numel() else 0
    pools = ClassPools.shuffled(y, num_classes, _trial_generator(seed))
    counts = pools.counts
    n_held = torch.minimum(torch.round(counts * fraction).long().clamp_min(1), counts - 1).clamp_min(0)
    first = pools.valid & (torch.arange(pools.index.shape[1]) < n_held.unsqueeze(1))
    held = torch.zeros(y.numel(), dtype=torch.bool)
    held[pools.index[first]] = True
    return torch.nonzero(~held, as_tuple=True)[0], torch.nonzero(held, as_tuple=True)[0]


def rdm_arm(data: RealData, ipc: int, seed: int, pool: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(x, y) of the rdm arm: a random class-balanced subset of the train split (or of `pool` indices).

    `x` is the stored pixels of just those IPC×K images (uint8 for images), normalized per batch
    on the device by the training loop.
    """
    labels = data.train.labels
    base = torch.arange(labels.numel()) if pool is None else pool
    idx = base[random_subset(labels[base], data.num_classes, ipc, seed)]
    return data.train.take(idx), labels[idx]


def validation_split(data: RealData, fraction: float, seed: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """(pool indices, (val_x, val_y)): what an lr search validates on (stored pixels), and what rdm may draw from."""
    pool, val = holdout_split(data.train.labels, fraction, seed)
    return pool, (data.train.take(val), data.train.labels[val])
