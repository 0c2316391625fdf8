"""Check a training set against the real data before anything trains on it.

One validator for every set ddray trains on: the rdm and full arms, a synthesized set, a user's
files or a plugin's return value (`ddray.methods.validate.check_set` canonicalizes those first,
then asks here with `ipc`, which adds the distilled-set contract: ipc images of each class).
Why: a wrong shape or a NaN should fail in a second with the file named, not after an hour with a
cryptic shape error deep in a convolution on a remote worker. Every problem is reported at once,
each tagged with the part it is about ("images" or "labels") so a caller can name that file.
Real arms arrive as stored uint8 pixels (normalized later, per batch), and a train split streamed
from its files as a shape-only "meta" tensor: their shapes and labels are checked, not their values.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ddray.data import DatasetMeta, RealData
from ddray.errors import InputError

Problem = tuple[str, str]  # (part: "images" | "labels", message)


def training_set_problems(x: Tensor, y: Tensor | None, data: RealData | DatasetMeta,
                          ipc: int | None = None) -> list[Problem]:
    """Every problem of (x, y) as a training set for `data` (empty when it is usable).

    `y` is (N,) integer class ids or (N, K) float logits; None checks the images alone. With
    `ipc`, the set must hold exactly `ipc` images of each class (what a distilled set promises).
    """
    if not isinstance(x, Tensor) or not isinstance(y, (Tensor, type(None))):
        return [("images", f"images and labels must be tensors, got {type(x).__name__} and {type(y).__name__}")]
    problems = _image_problems(x, data, ipc)
    if y is not None:
        problems += _label_problems(y, x, data.num_classes, ipc)
    return problems


def _image_problems(x: Tensor, data: RealData | DatasetMeta, ipc: int | None) -> list[Problem]:
    c, h, w = data.image_shape
    if ipc is None:
        expected = f"expected N×{c}×{h}×{w} (N×C×H×W of '{data.name}')"
    else:
        n = ipc * data.num_classes
        expected = f"expected ({n}, {c}, {h}, {w}) = (ipc·classes, C, H, W) for {data.name} at IPC {ipc}"
    problems: list[Problem] = []
    if x.dim() != 4 or tuple(x.shape[1:]) != (c, h, w) or (ipc is not None and x.shape[0] != ipc * data.num_classes):
        problems.append(("images", f"images have shape {tuple(x.shape)}; {expected}"))
    elif x.shape[0] == 0:
        problems.append(("images", "no images"))
    if x.dtype == torch.uint8 and ipc is None:
        pass  # real stored pixels (an rdm or full arm), normalized per batch on the device
    elif not x.is_floating_point():
        problems.append(("images", f"images must be floating point, got {x.dtype}"))
    elif x.device.type != "meta" and not bool(torch.isfinite(x).all()):  # one bool mask, counted only if bad
        problems.append(("images", f"images contain {int((~torch.isfinite(x)).sum())} non-finite values (NaN or inf)"))
    return problems


def _label_problems(y: Tensor, x: Tensor, k: int, ipc: int | None) -> list[Problem]:
    n = int(x.shape[0]) if x.dim() >= 1 else 0
    problems: list[Problem] = []
    if y.dim() in (1, 2) and y.shape[0] != n:
        problems.append(("labels", f"{n} images but {y.shape[0]} labels"))
    if y.dim() == 1:
        if y.is_floating_point() or y.dtype == torch.bool:
            problems.append(("labels", f"hard labels must be integers, got {y.dtype}"))
        elif y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            problems.append(("labels", f"labels range over [{int(y.min())}, {int(y.max())}]; expected class ids in [0, {k})"))
        elif ipc is not None and bool((per_class := torch.bincount(y.long(), minlength=k)).ne(ipc).any()):
            problems.append(("labels", f"labels give {per_class.tolist()} images per class; "
                                       f"expected {ipc} for each of {k} classes"))
    elif y.dim() == 2:
        if y.shape[1] != k:
            problems.append(("labels", f"soft labels have shape {tuple(y.shape)}; expected ({y.shape[0]}, {k}) (N×K logits)"))
        if not y.is_floating_point():
            problems.append(("labels", f"soft labels must be finite floating-point logits, got {y.dtype}"))
        elif bad := int((~torch.isfinite(y)).sum()):
            problems.append(("labels", f"soft labels must be finite floating-point logits; {bad} values are NaN or inf"))
    else:
        problems.append(("labels", f"labels have shape {tuple(y.shape)}; expected ({n},) class ids or ({n}, {k}) logits"))
    return problems


def validate_training_set(x: Tensor, y: Tensor, data: RealData | DatasetMeta, source: str) -> None:
    """Raise InputError whose lines are `source: problem` when (x, y) cannot train on `data`."""
    problems = training_set_problems(x, y, data)
    if problems:
        raise InputError([(source, message) for _, message in problems])
