"""Time-to-synthesize: the wall clock of the synthesis alone, with the device it ran on.

Teacher training happens before `synthesize` is called, so it is excluded by construction; on
CUDA the clock stops only after the device has finished the queued work. Two corrections keep
the figure a property of the method, not of what ran before it on the node:
- decoding the real data (now done when a method first reads it) is not counted
  (`ddray.data.split.DATA_CLOCK`);
- work a method reuses from the node cache (the embedding pass of herding and k-center) is
  charged at what it cost when it was computed (`charge`), so a k-center run after a herding
  run on the same node reports the same kind of time as one run alone.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from ddray.data.split import DATA_CLOCK
from ddray.methods.contract import DistilledSet, MethodEntry, SynthContext


def device_label(device: torch.device) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H100 80GB HBM3)': what the report plots time against."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_charged: list[float] = []  # seconds of reused work charged to the synthesis running in this process


def charge(seconds: float) -> None:
    """Count `seconds` of work done earlier (and reused from the node cache) in the running synthesis."""
    _charged.append(float(seconds))


def synthesize(entry: MethodEntry, ctx: SynthContext) -> DistilledSet:
    """Run `entry` on `ctx`, stamping synth_seconds and the device; the set stays on ctx.device.

    Loaders (`entry.timed` false, e.g. `files`) keep what the set says about itself (None, or a
    saved set's own meta.json), since reading files is not synthesizing them.
    """
    if not entry.timed:
        return entry.synthesize(ctx)
    _sync(ctx.device)
    _charged.clear()
    data0, start = DATA_CLOCK.seconds(), time.perf_counter()
    out = entry.synthesize(ctx)
    _sync(ctx.device)
    seconds = time.perf_counter() - start - (DATA_CLOCK.seconds() - data0) + sum(_charged)
    _charged.clear()
    return replace(out, synth_seconds=max(0.0, seconds), device=device_label(ctx.device))
