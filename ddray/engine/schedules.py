"""Learning-rate multipliers as pure functions of the (possibly fractional) epoch.

The loop sets `lr = lr0 · lr_factor(...)` at the start of every epoch, so a resumed run needs no
scheduler state: the epoch number is the whole state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def cosine(epoch: float, epochs: int, zeta: float = 1.0) -> float:
    """RD³'s smoothed cosine ½(1 + cos(π·e/(ζ·E))): ζ = 1 decays to 0 at E, ζ = 2 only to ½."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / (zeta * epochs)))


def milestone(fraction: float, epochs: int) -> int:
    """The epoch ⌊f·E⌋ where a step happens; at least 1 for f > 0, so a short run still starts at lr0."""
    return max(1, int(fraction * epochs)) if fraction > 0 else 0


def step_index(epoch: float, epochs: int, at: Sequence[float] = (0.5,)) -> int:
    """How many step milestones `epoch` has reached (the loop re-creates the optimizer when it changes)."""
    return sum(1 for f in at if epoch >= milestone(f, epochs))


def step(epoch: float, epochs: int, at: Sequence[float] = (0.5,), gamma: float = 0.1) -> float:
    """×gamma at each milestone the epoch has reached."""
    return gamma ** step_index(epoch, epochs, at)


def lr_factor(schedule: str, epoch: float, epochs: int, *, zeta: float = 1.0,
              step_at: Sequence[float] = (0.5,), step_gamma: float = 0.1) -> float:
    if schedule == "cosine":
        return cosine(epoch, epochs, zeta)
    if schedule == "step":
        return step(epoch, epochs, step_at, step_gamma)
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown schedule '{schedule}'")
