"""Test-set evaluation: large batches under inference mode, one host sync at the end."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EVAL_BATCH = 1024


@dataclass(frozen=True)
class EvalScores:
    """What `evaluate` measures on a split (test or validation); not the spec's score weights."""

    top1: float
    top5: float
    loss: float


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when `amp`; a disabled context elsewhere (CPU numbers stay float32)."""
    on = amp and device.type == "cuda"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, device: torch.device, *, amp: bool = False,
             channels_last: bool = False, batch_size: int = EVAL_BATCH) -> EvalScores:
    """Top-1, top-k (k = min(5, classes)) and mean CE of `model` on (x, y).

    (x, y) may live on the CPU (the real test split does): each chunk is moved on its way in,
    so a test set larger than the device memory still evaluates.
    """
    was_training = model.training
    model.eval()
    correct1 = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    n = int(y.shape[0])
    try:
        with torch.inference_mode(), autocast(device, amp):
            for i in range(0, n, batch_size):
                xb = x[i:i + batch_size].to(device, non_blocking=True)
                yb = y[i:i + batch_size].to(device, non_blocking=True)
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
