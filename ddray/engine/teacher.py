"""Teachers and the full-data arm: the same training loop on the whole train split, hard labels.

Training a teacher *is* the full-data arm (Acc(full, hard)) for its arch and seed, so the runner
trains it once and reuses it both as the HLR reference and as the soft-label teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor, nn

from ddray.data import RealData, Split
from ddray.errors import InputError
from ddray.models import build_model
from ddray.protocols import Protocol

from .checkpoint import Checkpointer
from .train import EpochCallback, TrainResult, train_student
from .weights import fit_problems, read_state_dict, strip_wrappers


DEVICE_SHARE = 0.25  # a train split up to this share of a GPU's memory is copied there whole


def full_training_set(split: Split, device: torch.device) -> Tensor | Split:
    """The train split as full-data training reads it: one tensor of stored pixels when it is resident
    (in memory or the node cache; on a GPU only when it is small enough), else the split itself,
    streamed batch by batch. Both give the same batches in the same seeded order."""
    x = split.resident()
    if x is None:
        return split
    if device.type == "cuda" and x.numel() * x.element_size() > DEVICE_SHARE * torch.cuda.get_device_properties(device).total_memory:
        return split
    return x.to(device)


def train_teacher(data: RealData, arch: str, recipe: Protocol, seed: int, device: torch.device | str, *,
                  checkpointer: Checkpointer | None = None, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train `arch` on the full train split with hard labels under `recipe` (e.g. `full_recipe(...)`).

    The recipe's augmentation is used when it has one (natural images: crop + flip).
    """
    device = torch.device(device)
    return train_student(full_training_set(data.train, device), data.train.labels.to(device), data, arch, recipe,
                         labels="hard", aug=recipe.augment.active, seed=seed, device=device,
                         checkpointer=checkpointer, on_epoch=on_epoch, pixels=data.pixels, arm="full")


def save_teacher(model: nn.Module, path: str | Path | BinaryIO) -> None:
    """A plain CPU state dict, loadable with weights_only=True, to a path or an open binary file."""
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path if hasattr(path, "write") else str(path))


def load_teacher(path: str | Path, arch: str, data: RealData) -> nn.Module:
    """Build `arch` for `data` and load the weights at `path` (CPU, eval mode).

    `path` is a state dict as ddray saves it, a torchvision `.pth` for a `tv:` arch, or a timm
    `.safetensors`/`.bin`/`.pth` for a `timm:` arch (see `weights.read_state_dict`). Raises
    InputError naming the file when it is missing, unreadable, not a state dict, or made for
    another arch or class count (which keys and shapes differ).
    """
    state = read_state_dict(path, "teacher checkpoint")
    c, h, _ = data.image_shape
    model = build_model(arch, c, data.num_classes, h)
    state = strip_wrappers(state, model)
    problem = fit_problems(state, model, data.num_classes)
    if problem is None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:  # what fit_problems does not foresee; torch's own first lines
            problem = " ".join(line.strip() for line in str(e).strip().splitlines()[:3])
    if problem is not None:
        raise InputError(f"teacher weights do not fit arch '{arch}' for '{data.name}' "
                         f"({c}×{h}×{h}, {data.num_classes} classes): {problem}", str(path))
    return model.eval()
