"""`tv:<name>`: any torchvision classification model, by its torchvision name, never pretrained.

The model is torchvision's own object (`torchvision.models.get_model(name, weights=None,
num_classes=K)`), so its state-dict keys are torchvision's and the official checkpoints
(`resnet18-f37072fd.pth`, ...) load into it as they are (`ddray.engine.load_teacher`). ddray adds
only what its methods need, without wrapping: `embed(x)` (the classifier's input, see
`embedding.py`) and, for 1-channel data, a forward pre-hook that repeats the channel to RGB.

Which image sizes a model can take is measured, not tabulated by hand: a forward pass on PyTorch's
`meta` device (shapes only, no memory, no arithmetic) either goes through or fails the way the
real model would (ViT's "Wrong image height! Expected 224", AlexNet's pooling below 1×1).
`validate_arch` runs that probe for the size asked; `ddray models` reads its results for every
model from `tv_sizes.json`, written by `python -m ddray.models.tv_models` with the same probe.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor, nn

from ddray.errors import InputError, did_you_mean

from .embedding import with_head_embed

PREFIX = "tv:"
SIZES_FILE = Path(__file__).with_name("tv_sizes.json")
PROBE_CLASSES = 10  # the class count does not change which sizes a network takes


def tv_name(arch: str) -> str | None:
    return arch[len(PREFIX):] if arch.lower().startswith(PREFIX) else None


@lru_cache(maxsize=1)
def zoo() -> tuple[str, ...]:
    """torchvision's classification models (detection, segmentation, video live in submodules)."""
    from torchvision import models

    return tuple(models.list_models(module=models))


def check_tv(arch: str) -> str | None:
    """Why `tv:<name>` names no torchvision classifier, or None."""
    name = tv_name(arch)
    if not name:
        return f"'{arch}': write tv:<torchvision model name>, e.g. tv:resnet18"
    if name not in zoo():
        return f"unknown torchvision classification model '{name}'{did_you_mean(name, zoo())}"
    return None


def construct(name: str, num_classes: int) -> nn.Module:
    """torchvision's `name` with random weights, returning plain logits in training mode too.

    GoogLeNet and Inception-v3 are built with their auxiliary heads (the official checkpoints hold
    them, so they must load) but told not to return them: ddray's losses expect one logits tensor.
    """
    from torchvision import models

    with warnings.catch_warnings():  # GoogLeNet/Inception announce a future init change
        warnings.simplefilter("ignore", FutureWarning)
        model = models.get_model(name, weights=None, num_classes=num_classes)
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
    return model


@lru_cache(maxsize=512)
def size_problem(name: str, image_size: int) -> str | None:
    """Why torchvision's `name` cannot take image_size×image_size inputs, or None.

    Measured by a forward pass on the meta device. None too when the probe cannot say: a model that
    cannot be built on the meta device (RegNet computes its widths with tensors), or one whose
    probe fails even at 224 px, the size the zoo is made for (then the failure is not the size's).
    """
    error = _meta_forward(name, image_size)
    if error is None or image_size == 224 or _meta_forward(name, 224) is not None:
        return None
    return error


@lru_cache(maxsize=4)
def _meta_model(name: str) -> nn.Module | None:
    """`name` on the meta device (weights without storage), or None when it cannot be built there."""
    try:
        with torch.device("meta"):
            return construct(name, PROBE_CLASSES).eval()
    except Exception:  # noqa: BLE001 - unprobeable here; the real build will speak for itself
        return None


def _meta_forward(name: str, image_size: int) -> str | None:
    model = _meta_model(name)
    if model is None:
        return None
    try:
        with torch.no_grad():
            model(torch.empty(1, 3, image_size, image_size, device="meta"))
    except Exception as e:  # noqa: BLE001 - any failure here is the shape's
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


def fits_tv(arch: str, image_size: int) -> str | None:
    name = tv_name(arch)
    assert name is not None
    problem = size_problem(name, image_size)
    if problem is None:
        return None
    return (f"arch '{arch}' cannot take {image_size}×{image_size} images ({problem}); "
            f"it takes {sizes_text(name)}")


def _gray_to_rgb(_module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    x, *rest = args
    return (x.expand(-1, 3, -1, -1), *rest)


def build_tv(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    name = tv_name(arch)
    assert name is not None
    if in_channels not in (1, 3):
        raise InputError(f"arch '{arch}' takes RGB images (1-channel images are repeated to 3); "
                         f"this data has {in_channels} channels")
    model = construct(name, num_classes)
    if in_channels == 1:
        model.register_forward_pre_hook(_gray_to_rgb)
    return with_head_embed(model, num_classes, f"arch '{arch}'")


# --- what `ddray models` says about each -------------------------------------------------------
def sizes_rule(name: str) -> dict[str, int | None]:
    """{"min": smallest side that runs, "only": the one side it takes, or None}, by meta probes.

    Assumes what holds for convolutional and windowed networks: a model that runs at some side runs
    at every larger one, unless it is built for one input size (ViT, MaxViT: `only`).
    """
    if size_problem(name, 224) is None and size_problem(name, 192) and size_problem(name, 256):
        return {"min": 224, "only": 224}
    low, high = 1, 224  # high always runs; find the smallest side that does
    while low < high:
        mid = (low + high) // 2
        if size_problem(name, mid) is None:
            high = mid
        else:
            low = mid + 1
    return {"min": high, "only": None}


@lru_cache(maxsize=1)
def _measured() -> dict[str, dict[str, int | None]]:
    """The rules `python -m ddray.models.tv_models` measured, if made with this torchvision."""
    import torchvision

    saved = json.loads(SIZES_FILE.read_text()) if SIZES_FILE.is_file() else {}
    return saved.get("sizes", {}) if saved.get("torchvision") == _release(torchvision.__version__) else {}


def sizes_text(name: str) -> str:
    """'224×224 only', 'any size', '≥ 63 px' (measured), or torchvision's documented minimum."""
    rule = _measured().get(name)
    if rule is None:
        from torchvision import models

        low = next(iter(models.get_model_weights(name))).meta["min_size"][0]
        return f"≥ {low} px (torchvision's documented minimum)"
    if rule["only"]:
        return f"{rule['only']}×{rule['only']} only"
    return "any size" if rule["min"] == 1 else f"≥ {rule['min']} px"


def tv_listing() -> list[tuple[str, str]]:
    """(`tv:<name>`, description) for every torchvision classifier, from metadata only (fast)."""
    from torchvision import models

    rows = []
    for name in zoo():
        params = next(iter(models.get_model_weights(name))).meta["num_params"]
        rows.append((f"{PREFIX}{name}", f"torchvision {name}, {params / 1e6:.1f}M params at 1000 classes; "
                                        f"inputs: {sizes_text(name)}"))
    return rows


def main() -> None:
    """Measure every model's sizes into tv_sizes.json (run after a torchvision upgrade)."""
    import torchvision

    sizes = {}
    for name in zoo():
        if _meta_model(name) is not None and _meta_forward(name, 224) is None:
            sizes[name] = sizes_rule(name)
            print(name, sizes[name], flush=True)
    write_sizes(_release(torchvision.__version__), sizes)


def write_sizes(release: str, sizes: dict[str, dict[str, int | None]]) -> None:
    """tv_sizes.json with one model a line, so a torchvision upgrade reads as a short diff."""
    lines = [f'  "{name}": {json.dumps(rule)}' for name, rule in sorted(sizes.items())]
    SIZES_FILE.write_text(f'{{"torchvision": "{release}", "sizes": {{\n' + ",\n".join(lines) + "\n}}\n")


def _release(version: str) -> str:
    """'0.29' of '0.29.2+cu132': architectures change between releases, not in patch versions."""
    return ".".join(version.split("+")[0].split(".")[:2])


if __name__ == "__main__":
    main()
