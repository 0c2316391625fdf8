"""Check a training set against the real data before any training starts.

Distilled sets come from users' files; a wrong shape or a NaN should fail in a second with the file
named, not after an hour with a cryptic shape error deep in a convolution.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddray.data import DatasetMeta, RealData
from ddray.errors import InputError


def training_set_problems(x: Tensor, y: Tensor, data: RealData | DatasetMeta) -> list[str]:
    """Every problem of (x, y) as a training set for `data` (empty when it is usable)."""
    c, h, w = data.image_shape
    k = data.num_classes
    problems: list[str] = []
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        return [f"images and labels must be tensors, got {type(x).__name__} and {type(y).__name__}"]
    if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w):
        problems.append(f"images have shape {tuple(x.shape)}; expected N×{c}×{h}×{w} (N×C×H×W of '{data.name}')")
    elif x.shape[0] == 0:
        problems.append("no images")
    if not x.is_floating_point():
        problems.append(f"images must be floating point, got {x.dtype}")
    elif not bool(torch.isfinite(x).all()):
        problems.append("images contain NaN or inf")
    if y.dim() == 1:
        if y.is_floating_point() or y.dtype == torch.bool:
            problems.append(f"hard labels must be integers, got {y.dtype}")
        elif y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            problems.append(f"labels span [{int(y.min())}, {int(y.max())}]; expected classes in [0, {k - 1}]")
    elif y.dim() == 2:
        if y.shape[1] != k:
            problems.append(f"soft labels have {y.shape[1]} classes; expected {k} (N×{k} logits)")
        if not y.is_floating_point():
            problems.append(f"soft labels must be floating point logits, got {y.dtype}")
        elif not bool(torch.isfinite(y).all()):
            problems.append("soft labels contain NaN or inf")
    else:
        problems.append(f"labels have shape {tuple(y.shape)}; expected (N,) class ids or (N, {k}) logits")
    if x.dim() >= 1 and y.dim() >= 1 and x.shape[0] != y.shape[0]:
        problems.append(f"{x.shape[0]} images but {y.shape[0]} labels")
    return problems


def validate_training_set(x: Tensor, y: Tensor, data: RealData | DatasetMeta, source: str) -> None:
    """Raise InputError whose lines are `source: problem` when (x, y) cannot train on `data`."""
    problems = training_set_problems(x, y, data)
    if problems:
        raise InputError([(source, p) for p in problems])
