"""Stored pixels -> the network's input: `PixelSpec`, the one normalization, applied per batch.

Splits keep the file's pixels (uint8 for images) until a batch is on its device; there
`PixelSpec` turns it into normalized float32 with `x.float().div_(scale).sub_(mean).div_(std)`,
the same float32 operations in the same order as the whole-tensor normalization ddray used
before, so CPU numbers are bit-identical and a uint8 batch moves to a GPU 4× smaller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

STATS_CHUNK = 4096  # images per float64 chunk when computing statistics (bounds memory; fixes the sum order)
STATS_PIXELS = STATS_CHUNK * 32 * 32  # beyond 64×64 images, a chunk holds at most this many pixels per channel


def stats_chunk(height: int, width: int) -> int:
    """Images per statistics chunk: 4096 up to 64×64 — the chunking every stored number was computed
    with — and a bounded float64 chunk (~100 MB at 3 channels) for larger images (4096 images at
    224 px would be 4.9 GB of float64)."""
    if height * width <= 64 * 64:
        return STATS_CHUNK
    return max(1, STATS_PIXELS // (height * width))


@dataclass(frozen=True)
class PixelSpec:
    """How stored pixels become network input: (x / scale − mean) / std per channel, in float32.

    `prenormalized`: the stored pixels are already normalized with (mean, std) (a tensors file
    of normalized floats); they are only cast to float32. `mean`/`std` still describe them, so
    methods that clamp to the pixel range or normalize a user's [0, 1] images keep working.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 255.0
    prenormalized: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        """A normalized float32 copy of `x` on `x`'s device (`x` itself when already float32 and normalized)."""
        if self.prenormalized:
            return x if x.dtype == torch.float32 else x.to(torch.float32)
        out = x.to(torch.float32) if x.dtype != torch.float32 else x.clone()
        c = out.shape[1]
        out.div_(self.scale)
        out.sub_(torch.tensor(self.mean, dtype=torch.float32, device=out.device).view(1, c, 1, 1))
        out.div_(torch.tensor(self.std, dtype=torch.float32, device=out.device).view(1, c, 1, 1))
        return out


def _tensor(x: Tensor | np.ndarray) -> Tensor:
    """A tensor view of `x`; read-only numpy buffers (np.frombuffer) are copied, not aliased."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    return torch.as_tensor(x)


def chunk_stats(chunks: Iterable[Tensor | np.ndarray], scale: float = 255.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of N×C×H×W pixels / `scale`, accumulated in float64 over `chunks`.

    Why chunks of `STATS_CHUNK` images: the float64 copy stays small, and the same chunking
    gives the same sums whether the pixels are in memory, memory-mapped or streamed from files.
    """
    total = total_sq = None
    count = 0
    for part in chunks:
        chunk = _tensor(part).to(torch.float64, copy=True).div_(scale)  # in place: one float64 copy, not two
        s, sq = chunk.sum(dim=(0, 2, 3)), chunk.square().sum(dim=(0, 2, 3))
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    if total is None:
        raise ValueError("no pixels to compute statistics from")
    mean = total / max(count, 1)
    var = (total_sq / max(count, 1) - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-8)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def normalize(x: Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float], scale: float = 255.0) -> Tensor:
    """(x / scale − mean) / std per channel as a contiguous float32 tensor (a whole array at once)."""
    spec = PixelSpec(tuple(float(m) for m in mean), tuple(float(s) for s in std), float(scale))
    return spec(_tensor(x)).contiguous()


def labels_tensor(y: np.ndarray | Sequence[int] | Tensor) -> Tensor:
    return torch.from_numpy(np.array(y, dtype=np.int64))  # np.array copies: writable, owned
