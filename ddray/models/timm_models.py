"""`timm:<name>` students: any timm architecture, always randomly initialized (no downloads)."""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor, nn

from ddray.errors import did_you_mean

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


class TimmModel(nn.Module):
    """A timm network with ddray's `embed` (timm's pre-logits features)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def embed(self, x: Tensor) -> Tensor:
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def build_timm(arch: str, in_channels: int, num_classes: int, image_size: int) -> TimmModel:
    import timm

    name = timm_name(arch)
    kwargs = dict(pretrained=False, num_classes=num_classes, in_chans=in_channels)
    try:  # transformers need the input size; convnets reject the keyword
        net = timm.create_model(name, img_size=image_size, **kwargs)
    except TypeError:
        net = timm.create_model(name, **kwargs)
    return TimmModel(net)
