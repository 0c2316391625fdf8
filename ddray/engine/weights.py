"""Reading someone else's weights: checkpoint files to a state dict, and why one does not fit.

Teachers come as files ddray did not write: torchvision's `.pth` downloads, timm's
`model.safetensors` / `pytorch_model.bin`, a training script's `{"state_dict": ...}` with
DataParallel's `module.` prefix. Every file is untrusted: torch files are read with
`weights_only=True` (tensors and plain containers only, never pickled code) and safetensors files
hold tensors by construction. A file that does not fit the model is reported by what differs
(missing keys, unexpected keys, shapes), not by torch's wall of text.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ddray.errors import InputError
from ddray.registry import describe

# Prefixes a wrapper adds to every key: DataParallel/DDP, and ddray's former timm wrapper (`net.`).
WRAPPER_PREFIXES = ("module.", "net.")
SHOWN = 3  # keys named per kind of difference; the rest are counted


def read_state_dict(path: str | Path, what: str = "checkpoint") -> dict[str, Tensor]:
    """The tensors of a `.safetensors` file or a torch file (`.pth`, `.pt`, `.bin`, ...).

    A torch file may hold the state dict itself or wrap it as `{"state_dict": ...}` or
    `{"model": ...}`. InputError naming the file when it is missing, unreadable, or not tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found (expected a state dict: .safetensors, or .pth/.pt/.bin "
                         f"saved with torch.save)", str(path))
    obj = _read_safetensors(path, what) if path.suffix == ".safetensors" else _read_torch(path, what)
    state = _unwrap(obj)
    if state is None:
        raise InputError(f"{what} is not a state dict of tensors (found {describe(obj)})", str(path))
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # loaded as is, every student of it would be stored, permanently, as "diverged"
        raise InputError(f"{what} holds NaN or infinite values in {_count(len(broken), 'tensor')} "
                         f"({_first(broken)}): a diverged training saved it?", str(path))
    return state


def _read_safetensors(path: Path, what: str) -> Any:
    try:
        from safetensors.torch import load
    except ImportError as e:
        raise InputError(f"reading a .safetensors {what} needs the safetensors package "
                         f"(pip install safetensors), or save it with torch.save", str(path)) from e
    data = _read_file(path, what)
    try:
        return load(data)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - parsing bytes in memory: a corrupt file is the file's fault
        raise InputError(f"cannot read {what} as safetensors: {type(e).__name__}: {e}", str(path)) from e


def _read_file(path: Path, what: str) -> bytes:
    """The file's bytes. A missing, unreadable or folder path is the input's fault (InputError naming
    why); any other OSError (an I/O error, a dropped network mount) is transient and propagates, so
    the trial is retried instead of being stored as a bad input."""
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        reason = "permission denied" if isinstance(e, PermissionError) else (e.strerror or str(e)).lower()
        raise InputError(f"cannot read {what}: {reason}", str(path)) from None


def _read_torch(path: Path, what: str) -> Any:
    data = _read_file(path, what)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - parsing bytes in memory: any unpickling failure is the file's fault
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InputError(f"cannot read {what} with torch.load(weights_only=True), which refuses pickled "
                         f"code: {type(e).__name__}: {detail}", str(path)) from e


def _unwrap(obj: Any) -> dict[str, Tensor] | None:
    """The state dict inside `obj` (bare, or under "state_dict"/"model"), or None."""
    if not isinstance(obj, Mapping):
        return None
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not obj or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return None
    return dict(obj)


def strip_wrappers(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """`state` without a wrapper prefix that every key has and none of `model`'s keys has."""
    own = list(model.state_dict())
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in own):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def fit_problems(state: Mapping[str, Tensor], model: nn.Module, num_classes: int) -> str | None:
    """What keeps `state` from loading into `model` strictly, in one sentence, or None.

    BatchNorm's `num_batches_tracked` may be missing: checkpoints saved before PyTorch 0.4.1
    (torchvision's own ResNets among them) lack it, and torch fills it in.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    parts = []
    if missing:
        parts.append(f"{_count(len(missing), 'missing key')} ({_first(missing)})")
    if unexpected:
        parts.append(f"{_count(len(unexpected), 'unexpected key')} ({_first(unexpected)})")
    if shapes:
        shown = [f"{k}: file {_shape(a)}, model {_shape(b)}" for k, a, b in shapes]
        parts.append(f"{_count(len(shapes), 'shape')} differ ({_first(shown, sep='; ')})")
    if not parts:
        return None
    classes = _checkpoint_classes(shapes, num_classes)
    lead = f"the file was made for {classes} classes, not {num_classes}: " if classes else ""
    return lead + ", ".join(parts)


def _checkpoint_classes(shapes: list[tuple[str, tuple, tuple]], num_classes: int) -> int | None:
    """The file's class count when every shape difference is the classifier's class dimension."""
    heads = [a[0] for _, a, b in shapes if a and b[:1] == (num_classes,) and a[1:] == b[1:]]
    return heads[0] if shapes and len(heads) == len(shapes) and len(set(heads)) == 1 else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _first(items: list[str], sep: str = ", ") -> str:
    more = f"{sep}... {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return sep.join(items[:SHOWN]) + more


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"
