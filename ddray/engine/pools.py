"""Per-class index tables of a label vector: the one class grouping behind every class-balanced draw.

Classes have different sizes; a padded K×M index table with a validity mask lets every sampler
draw for all classes at once from one explicit CPU generator, instead of looping over classes or
samples: the rdm arm's random subsets and the held-out validation split (`engine/arms.py`, from a
table shuffled by one permutation of the split) and the methods' samplers (random selection,
DM's real batches, RDED's candidates: random keys per row). Draws happen on the CPU, so the same
seed picks the same images on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ddray.errors import InputError


@dataclass(frozen=True)
class ClassPools:
    index: Tensor  # K×M int64 indices into the train split (padded with 0)
    valid: Tensor  # K×M bool
    counts: Tensor  # K int64

    @classmethod
    def of(cls, y: Tensor, num_classes: int) -> ClassPools:
        """Row c: the indices of class c in train-split order (one stable sort, no per-class Python)."""
        y = y.cpu()
        counts = torch.bincount(y, minlength=num_classes)
        width = int(counts.max()) if counts.numel() else 0
        order = torch.argsort(y, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        # position of each sorted sample within its class
        rank = torch.arange(order.numel()) - starts[y[order]]
        index = torch.zeros(num_classes, width, dtype=torch.int64)
        valid = torch.zeros(num_classes, width, dtype=torch.bool)
        index[y[order], rank] = order
        valid[y[order], rank] = True
        return cls(index, valid, counts)

    @classmethod
    def shuffled(cls, y: Tensor, num_classes: int, generator: torch.Generator) -> ClassPools:
        """Row c: the indices of class c in a random order, from one permutation of the whole split.

        Why one permutation (not one per class): a draw is then the same whatever the number of
        classes, and the first n of a row are a uniform sample of that class without replacement.
        """
        y = y.detach().cpu().long()
        perm = torch.randperm(y.numel(), generator=generator)
        pools = cls.of(y[perm], num_classes)
        return cls(torch.where(pools.valid, perm[pools.index], 0), pools.valid, pools.counts)

    @property
    def smallest(self) -> int:
        return int(self.counts.min())

    def sample(self, n: int, generator: torch.Generator, what: str = "samples") -> Tensor:
        """K×n distinct train indices per class, uniformly without replacement (class-major rows)."""
        if n > self.smallest:
            raise InputError(
                f"needs {n} {what} per class but the smallest class has {self.smallest} training images"
            )
        keys = torch.rand(self.index.shape, generator=generator)
        keys[~self.valid] = 2.0  # never picked: real keys lie in [0, 1)
        cols = torch.topk(keys, n, dim=1, largest=False).indices
        return torch.gather(self.index, 1, cols)

    def members(self, c: int) -> Tensor:
        """Train indices of class c, in this table's order (train-split order for `of`)."""
        return self.index[c, : int(self.counts[c])]


def seeded_generator(seed: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for (seed, stream): distinct streams never share draws for the same seed."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(stream)) % (2**63 - 1))
    return g
