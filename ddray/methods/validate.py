"""Turns a distilled set from outside ddray (user files, plugins) into a checked `DistilledSet`.

Foreign sets come as NumPy arrays, float class ids or without labels; here they become the
canonical tensors (float32 images, class-major int64 or float32 logit labels) after the one
training-set validator (`ddray.engine.validate`) has checked them, so a wrong shape or a NaN is
one InputError naming the file and what was expected, before anything trains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ddray.engine.validate import training_set_problems
from ddray.errors import InputError
from ddray.methods.contract import DistilledSet

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

    Foreign input is first made tensors (NumPy arrays, integer-valued float class ids, no
    labels: class-major ones), then checked by the one training-set validator with the
    distilled-set contract (`ipc` images of each class); every problem names its file. Only the
    data's name, shape and class count are read, so a DatasetMeta does for validation.
    """
    img = _as_float32(_tensor(images, where["images"], "images"))
    lab = None if labels is None else _class_ids(_as_float32(_tensor(labels, where["labels"], "labels")))
    value, lr_problem = _lr(lr)
    problems = [(where[part], message) for part, message in training_set_problems(img, lab, data, ipc)]
    if lr_problem:
        problems.append((where["lr"], lr_problem))
    if problems:
        raise InputError(problems)
    if lab is None:
        lab = class_major_labels(data.num_classes, ipc)
    elif lab.ndim == 1:  # hard labels: reorder to the class-major contract (stable within a class)
        lab = lab.long()
        order = torch.argsort(lab, stable=True)
        img, lab = img[order], lab[order]
    return DistilledSet(img.contiguous(), lab.contiguous(), value)


def _tensor(x: Any, path: str, what: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach().cpu()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise InputError(f"{what} is an object array; expected numbers", path=path)
        return torch.from_numpy(np.ascontiguousarray(x))
    raise InputError(f"{what} is a {type(x).__name__}; expected a tensor", path=path)


def _as_float32(t: Tensor) -> Tensor:
    """Floating tensors as float32 (what training uses), before the finiteness check sees them."""
    return t.float() if t.is_floating_point() else t


def _class_ids(lab: Tensor) -> Tensor:
    """(N,) float labels holding whole numbers (e.g. saved by NumPy) as int64; anything else as is."""
    if lab.ndim == 1 and lab.is_floating_point() and bool(torch.isfinite(lab).all()) and bool((lab == lab.round()).all()):
        return lab.long()
    return lab


def _lr(lr: Any) -> tuple[float | None, str | None]:
    """(the set's own learning rate, or None; the problem with it, or None)."""
    if lr is None:
        return None, None
    try:
        t = torch.as_tensor(lr.detach().cpu() if isinstance(lr, Tensor) else np.asarray(lr), dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        return None, f"lr is not a number: {e}"
    if t.numel() != 1:
        return None, f"lr must be one positive finite number; got shape {tuple(t.shape)}"
    value = float(t.reshape(()))
    if not math.isfinite(value) or value <= 0:
        return None, f"lr must be one positive finite number; got {value:g}"
    return value, None
