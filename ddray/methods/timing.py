"""Time-to-synthesize: the wall clock of the synthesis alone, with the device it ran on.

Teacher training happens before `synthesize` is called, so it is excluded by construction; on
CUDA the clock stops only after the device has finished the queued work.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from ddray.methods.types import DistilledSet, MethodEntry, SynthContext


def device_label(device: torch.device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)': what the report plots time against."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthesize(entry: MethodEntry, ctx: SynthContext) -> DistilledSet:
    """Run `entry` on `ctx`, stamping synth_seconds and the device; the set stays on ctx.device.

    Loaders (`entry.timed` false, e.g. `files`) keep what the set says about itself (None, or a
    saved set's own meta.json), since reading files is not synthesizing them.
    """
    if not entry.timed:
        return entry.synthesize(ctx)
    _sync(ctx.device)
    start = time.perf_counter()
    out = entry.synthesize(ctx)
    _sync(ctx.device)
    seconds = time.perf_counter() - start
    return replace(out, synth_seconds=seconds, device=device_label(ctx.device))
