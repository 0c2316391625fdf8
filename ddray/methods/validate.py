"""Checks a distilled set from outside ddray (user files, plugins) against the real data.

A wrong shape or a NaN in a user's set would otherwise surface as a cryptic error deep in a
training loop on a remote worker; here it becomes one InputError naming the file and what was
expected, before anything trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ddray.errors import InputError
from ddray.methods.types import DistilledSet

if TYPE_CHECKING:
    from ddray.data import DatasetMeta, RealData


def class_major_labels(num_classes: int, ipc: int, device: torch.device | str = "cpu") -> Tensor:
    """[0]*ipc + [1]*ipc + ...: the labels of a class-major set."""
    return torch.arange(num_classes, device=device).repeat_interleave(ipc)


def as_distilled(out: Any, data: RealData, ipc: int, source: str) -> DistilledSet:
    """A plugin's return value (DistilledSet, (images, labels) or (images, labels, lr)), checked."""
    if isinstance(out, DistilledSet):
        images, labels, lr = out.images, out.labels, out.lr
    elif isinstance(out, tuple) and len(out) in (2, 3):
        images, labels, lr = (*out, None) if len(out) == 2 else out
    else:
        raise InputError(f"{source}: returned {type(out).__name__}; expected a DistilledSet or (images, labels[, lr])")
    where = {"images": source, "labels": source, "lr": source}
    return check_set(images, labels, lr, data, ipc, where)


def check_set(
    images: Any, labels: Any, lr: Any, data: RealData | DatasetMeta, ipc: int, where: Mapping[str, str]
) -> DistilledSet:
    """Validate and canonicalize (float32 images, int64/float32 labels, class-major order).

    Only the data's name, shape and class count are read, so a DatasetMeta does for validation."""
    c, h, w = data.image_shape
    k = data.num_classes
    n_expected = ipc * k
    expected = f"expected ({n_expected}, {c}, {h}, {w}) = (ipc·classes, C, H, W) for {data.name} at IPC {ipc}"
    img = _tensor(images, where["images"], "images")
    if img.ndim != 4 or tuple(img.shape[1:]) != (c, h, w) or img.shape[0] != n_expected:
        raise InputError(f"images have shape {tuple(img.shape)}; {expected}", path=where["images"])
    if not img.is_floating_point():
        raise InputError(f"images have dtype {img.dtype}; expected floating point", path=where["images"])
    img = img.float()
    if not bool(torch.isfinite(img).all()):
        bad = int((~torch.isfinite(img)).sum())
        raise InputError(f"images contain {bad} non-finite values (NaN or inf)", path=where["images"])
    lab = _labels(labels, img.shape[0], k, ipc, where["labels"])
    if lab.ndim == 1:  # hard labels: reorder to the class-major contract (stable within a class)
        order = torch.argsort(lab, stable=True)
        img, lab = img[order], lab[order]
    return DistilledSet(img.contiguous(), lab.contiguous(), _lr(lr, where["lr"]))


def _tensor(x: Any, path: str, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise InputError(f"{what} is an object array; expected numbers", path=path)
        return torch.from_numpy(np.ascontiguousarray(x))
    raise InputError(f"{what} is a {type(x).__name__}; expected a tensor", path=path)


def _labels(labels: Any, n: int, k: int, ipc: int, path: str) -> Tensor:
    if labels is None:
        return class_major_labels(k, ipc)
    lab = _tensor(labels, path, "labels")
    if lab.ndim == 1:
        if lab.shape[0] != n:
            raise InputError(f"labels have shape {tuple(lab.shape)}; expected ({n},) hard labels or ({n}, {k}) soft logits", path=path)
        if lab.is_floating_point():
            if not bool(torch.isfinite(lab).all()) or not bool((lab == lab.round()).all()):
                raise InputError("hard labels must be integers", path=path)
        lab = lab.long()
        if int(lab.min()) < 0 or int(lab.max()) >= k:
            raise InputError(f"labels range over [{int(lab.min())}, {int(lab.max())}]; expected class ids in [0, {k})", path=path)
        counts = torch.bincount(lab, minlength=k)
        if bool((counts != ipc).any()):
            raise InputError(f"labels give {counts.tolist()} images per class; expected {ipc} for each of {k} classes", path=path)
        return lab
    if lab.ndim == 2:
        if tuple(lab.shape) != (n, k):
            raise InputError(f"soft labels have shape {tuple(lab.shape)}; expected ({n}, {k})", path=path)
        if not lab.is_floating_point() or not bool(torch.isfinite(lab).all()):
            raise InputError("soft labels must be finite floating-point logits", path=path)
        return lab.float()
    raise InputError(f"labels have shape {tuple(lab.shape)}; expected ({n},) hard labels or ({n}, {k}) soft logits", path=path)


def _lr(lr: Any, path: str) -> float | None:
    if lr is None:
        return None
    try:
        t = torch.as_tensor(lr.detach().cpu() if isinstance(lr, Tensor) else np.asarray(lr), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"lr is not a number: {e}", path=path) from e
    if t.numel() != 1:
        raise InputError(f"lr must be one positive finite number; got shape {tuple(t.shape)}", path=path)
    value = float(t.reshape(()))
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"lr must be one positive finite number; got {value:g}", path=path)
    return value
