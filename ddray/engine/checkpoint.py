"""Where a long training run saves itself, so a retried trial continues where it stopped.

The loop hands a plain dict of CPU tensors, numbers and lists (loadable with weights_only=True) to
`save` every `every` epochs and asks `load` once at the start. The store implements the durable
version; `MemoryCheckpointer` is the in-process one (tests, and runs that must not touch disk).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Checkpointer(Protocol):
    every: int

    def save(self, state: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...


class MemoryCheckpointer:
    """Keeps the last saved state in memory (a deep copy: the loop's tensors keep changing)."""

    def __init__(self, every: int = 1):
        self.every = every
        self.state: dict[str, Any] | None = None
        self.saves = 0

    def save(self, state: dict[str, Any]) -> None:
        self.state = copy.deepcopy(state)
        self.saves += 1

    def load(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.state)


def to_cpu(obj: Any) -> Any:
    """A detached CPU copy of nested dicts/lists/tuples of tensors (what a checkpoint stores)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
