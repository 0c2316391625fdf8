"""Teachers and the full-data arm: the same training loop on the whole train split, hard labels.

Training a teacher *is* the full-data arm (Acc(full, hard)) for its arch and seed, so the runner
trains it once and reuses it both as the HLR reference and as the soft-label teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ddray.data import RealData
from ddray.errors import InputError
from ddray.models import build_model
from ddray.protocols import Protocol

from .checkpoint import Checkpointer
from .train import EpochCallback, TrainResult, train_student


def train_teacher(data: RealData, arch: str, recipe: Protocol, seed: int, device: torch.device | str, *,
                  checkpointer: Checkpointer | None = None, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train `arch` on the full train split with hard labels under `recipe` (e.g. `full_recipe(...)`).

    The recipe's augmentation is used when it has one (natural images: crop + flip).
    """
    device = torch.device(device)
    return train_student(data.train_x.to(device), data.train_y.to(device), data, arch, recipe,
                         labels="hard", aug=recipe.augment.active, seed=seed, device=device,
                         checkpointer=checkpointer, on_epoch=on_epoch)


def save_teacher(model: nn.Module, path: str | Path | BinaryIO) -> None:
    """A plain CPU state dict, loadable with weights_only=True, to a path or an open binary file."""
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path if hasattr(path, "write") else str(path))


def _unwrap(obj: Any) -> Mapping[str, Any] | None:
    """Accept a bare state dict, {"state_dict": ...}/{"model": ...}, and DataParallel's "module." keys."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k.removeprefix("module."): v for k, v in obj.items()}
    return None


def load_teacher(path: str | Path, arch: str, data: RealData) -> nn.Module:
    """Build `arch` for `data` and load the state dict at `path` (CPU, eval mode).

    Raises InputError naming the file when it is missing, unreadable, or made for another arch/data.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("teacher checkpoint not found (expected a state dict saved with torch.save)", str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise InputError(f"cannot read teacher checkpoint: {type(e).__name__}: {e}", str(path)) from e
    state = _unwrap(obj)
    if state is None:
        raise InputError("teacher checkpoint is not a state dict of tensors", str(path))
    c, h, _ = data.image_shape
    model = build_model(arch, c, data.num_classes, h)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(
            f"teacher weights do not fit arch '{arch}' for '{data.name}' "
            f"({c}×{h}×{h}, {data.num_classes} classes): {detail}", str(path)) from e
    return model.eval()
