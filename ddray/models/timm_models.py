"""`timm:<name>` students: any timm architecture, always randomly initialized (no downloads).

The model is timm's own object, not a wrapper, so a timm state dict (`model.safetensors`,
`pytorch_model.bin`) loads into it with its keys as they are; ddray adds `embed` (timm's
pre-logits features) to its class (see `embedding.py`).
"""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor, nn

from ddray.errors import did_you_mean

from .embedding import with_embed

PREFIX = "timm:"


def timm_name(arch: str) -> str | None:
    return arch[len(PREFIX):] if arch.startswith(PREFIX) else None


@lru_cache(maxsize=1)
def _all_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def check_timm(arch: str) -> str | None:
    """Why `timm:<name>` is unusable, or None."""
    name = timm_name(arch)
    if not name:
        return f"'{arch}': write timm:<model name>, e.g. timm:resnet10t"
    try:
        import timm
    except ImportError:
        return f"'{arch}' needs the timm package"
    if not timm.is_model(name):
        return f"unknown timm model '{name}'{did_you_mean(name, _all_names())}"
    return None


def pre_logits(model: nn.Module, x: Tensor) -> Tensor:
    """timm's features before the classifier (after global pooling)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def build_timm(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    import timm

    name = timm_name(arch)
    kwargs = dict(pretrained=False, num_classes=num_classes, in_chans=in_channels)
    try:  # transformers need the input size; convnets reject the keyword
        net = timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError:
        net = timm.create_model(name, **kwargs)
    return with_embed(net, pre_logits)
