"""Device helpers for the runner: which device a trial uses, its CPU threads, and cleanup."""

from __future__ import annotations

import gc

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """`prefer` when given ("cpu", "cuda", "cuda:1"), else the first CUDA device, else the CPU.

    Ray sets CUDA_VISIBLE_DEVICES per trial, so "cuda" is always the trial's own GPU.
    """
    if prefer:
        return torch.device(prefer)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def set_threads(n: int) -> None:
    """Match torch's intra-op threads to the CPUs the trial was given (Ray does not do it)."""
    torch.set_num_threads(max(1, int(n)))


def free_device_memory() -> None:
    """Return cached blocks so the next trial in a reused actor starts with a clean device."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

