"""uint8 pixels -> normalized float32 tensors, shared by every loader.

Loaders decode into one uint8 N×C×H×W array and call `normalize_uint8` once: a single vectorized
pass, in place, so a 50k-image set never holds more than one float copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .types import RealData

_CHUNK = 4096  # images per float64 chunk when computing statistics (bounds peak memory)


def _tensor(x: Tensor | np.ndarray) -> Tensor:
    """A tensor view of `x`; read-only numpy buffers (np.frombuffer) are copied, not aliased."""
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    return torch.as_tensor(x)


def channel_stats(x: Tensor | np.ndarray, scale: float = 255.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of N×C×H×W pixels divided by `scale`, in float64 chunks."""
    t = _tensor(x)
    c = t.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, t.shape[0], _CHUNK):
        chunk = t[start : start + _CHUNK].to(torch.float64) / scale
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = t.shape[0] * t.shape[2] * t.shape[3]
    mean = total / max(count, 1)
    var = (total_sq / max(count, 1) - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-8)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def normalize(x: Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float], scale: float = 255.0) -> Tensor:
    """(x / scale - mean) / std per channel as a contiguous float32 tensor."""
    t = _tensor(x)
    out = t.to(torch.float32) if t.dtype != torch.float32 else t.clone()
    c = out.shape[1]
    out.div_(scale)
    out.sub_(torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1))
    out.div_(torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1))
    return out.contiguous()


def labels_tensor(y: np.ndarray | Sequence[int] | Tensor) -> Tensor:
    return torch.from_numpy(np.array(y, dtype=np.int64))  # np.array copies: writable, owned


def build_real_data(name: str, train_x: Tensor | np.ndarray, train_y: np.ndarray | Tensor,
                    test_x: Tensor | np.ndarray, test_y: np.ndarray | Tensor, classes: Sequence[str],
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    scale: float = 255.0) -> RealData:
    """Normalize both splits with (mean, std), computed from train pixels when not given."""
    if mean is None or std is None:
        mean, std = channel_stats(train_x, scale=scale)
    return RealData(
        name=name,
        train_x=normalize(train_x, mean, std, scale=scale),
        train_y=labels_tensor(train_y),
        test_x=normalize(test_x, mean, std, scale=scale),
        test_y=labels_tensor(test_y),
        classes=list(classes),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )
