"""Test-set evaluation: large batches under inference mode, one host sync at the end.

The real test split arrives as stored pixels (uint8 for images) — a tensor, or a `Split` read in
chunks — and each batch is normalized on the device by the data's `PixelSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddray.data import PixelSpec, Split

EVAL_BATCH = 1024
EVAL_PIXELS = EVAL_BATCH * 32 * 32  # a batch holds at most this many pixels per channel


def eval_batch(height: int, width: int) -> int:
    """Images per evaluation batch: 1024 up to 32×32 (every number stored so far), fewer for larger
    images so that a batch's activations stay bounded (1024 images at 224 px are ~0.6 GB of input alone)."""
    return max(1, min(EVAL_BATCH, EVAL_PIXELS // max(1, height * width)))


@dataclass(frozen=True)
class EvalScores:
    """What `evaluate` measures on a split (test or validation); not the spec's score weights."""

    top1: float
    top5: float
    loss: float


def resize_center_crop(ratio: float) -> Callable[[Tensor], Tensor]:
    """A batch of s×s stored pixels seen through Resize(round(s·ratio)) + CenterCrop(s), on its
    device: torchvision's transforms on the tensors (bilinear, antialiased), batched.

    RDED evaluates its students on `Resize(s // 7 * 8) + CenterCrop(s)` of the test images (the
    protocol's `test_resize`); DD-Ranking resizes the decoded image before ToTensor, which this
    does to the stored uint8 pixels.
    """
    from torchvision.transforms.v2 import functional as TF

    def view(x: Tensor) -> Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        size = int(round(min(h, w) * ratio))
        return TF.center_crop(TF.resize(x, [size], antialias=True), [h, w])

    return view


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when `amp`; a disabled context elsewhere (CPU numbers stay float32)."""
    on = amp and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def _tensor_batches(x: Tensor, y: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for i in range(0, int(y.shape[0]), size):
        yield x[i:i + size], y[i:i + size]


def _split_batches(split: Split, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    start = 0
    for xb in split.chunks(size):
        yield xb, split.labels[start:start + xb.shape[0]]
        start += xb.shape[0]


def evaluate(model: nn.Module, x: Tensor | Split, y: Tensor | None, device: torch.device, *,
             pixels: PixelSpec | None = None, amp: bool = False, channels_last: bool = False,
             batch_size: int | None = None, view: Callable[[Tensor], Tensor] | None = None) -> EvalScores:
    """Top-1, top-k (k = min(5, classes)) and mean CE of `model` on (x, y).

    `x` is a tensor (with labels `y`) or a `Split` (its own labels; `y` None), on the CPU or the
    device: each batch is moved on its way in, so a test split larger than the device memory
    still evaluates. `pixels` normalizes stored pixels on the device (None: `x` is normalized);
    `view` transforms the stored pixels first (`resize_center_crop`).
    """
    h, w = x.shape[-2:]
    size = batch_size or eval_batch(int(h), int(w))
    if isinstance(x, Split):
        batches: Iterable[tuple[Tensor, Tensor]] = _split_batches(x, size)
        n = len(x)
    else:
        assert y is not None
        batches, n = _tensor_batches(x, y, size), int(y.shape[0])
    was_training = model.training
    model.eval()
    correct1 = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    try:
        with torch.inference_mode(), autocast(device, amp):
            for xb, yb in batches:
                xb = xb.to(device, non_blocking=True)
                yb = yb.to(device, non_blocking=True)
                if view is not None:
                    xb = view(xb)
                if pixels is not None:
                    xb = pixels(xb)
                if channels_last and device.type == "cuda":
                    xb = xb.contiguous(memory_format=torch.channels_last)
                logits = model(xb).float()
                k = min(5, logits.shape[1])
                top = logits.topk(k, dim=1).indices
                hit = top == yb.unsqueeze(1)
                correct1 += hit[:, 0].sum()
                correct5 += hit.any(dim=1).sum()
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").double()
    finally:
        model.train(was_training)
    c1, c5, ls = (t.item() for t in (correct1, correct5, loss_sum))
    return EvalScores(top1=c1 / n, top5=c5 / n, loss=ls / n)
