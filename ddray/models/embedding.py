"""`embed(x)` for networks ddray did not write (torchvision, timm, plugins), without wrapping them.

DM, herding and k-center compare samples through `model.embed(x)`: the features the classifier
sees. A wrapper module would give every weight a prefix (`net.fc.weight`), and then the library's
own checkpoints (torchvision's `resnet18-f37072fd.pth`, a timm state dict) no longer load as they
are. So the model stays the library's object and only its class gains an `embed` method: a
subclass made once per (class, embedding rule), swapped in with `__class__`. State-dict keys,
`isinstance` checks and `copy.deepcopy` (EMA) are unchanged; pickling the module itself is not
supported (ddray saves state dicts only).

The generic rule, `embed_from_head`, needs no table of architectures: the classifier is the last
`nn.Linear` (else 1×1-conv classifier, as in SqueezeNet) whose outputs are the class count, and the
embedding is what flows into it, captured by a forward pre-hook during a normal forward pass
(so the model's own input handling runs too), globally pooled when it is still a feature map.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from torch import Tensor, nn

from ddray.errors import InputError

EmbedFn = Callable[[nn.Module, Tensor], Tensor]
HEAD_ATTR = "ddray_head"  # name of the classifier module, kept as a plain (non-state) attribute


def find_head(model: nn.Module, num_classes: int) -> str | None:
    """Qualified name of the classifier: the last Linear with `num_classes` outputs, else the last
    Conv2d with `num_classes` output channels; None when the model has neither."""
    linear = conv = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            linear = name
        elif isinstance(module, nn.Conv2d) and module.out_channels == num_classes:
            conv = name
    return linear if linear is not None else conv


def embed_from_head(model: nn.Module, x: Tensor) -> Tensor:
    """The input of `model`'s classifier during a forward pass of `x`, as an N×D matrix."""
    captured: list[Tensor] = []
    head = model.get_submodule(getattr(model, HEAD_ATTR))
    handle = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    features = captured[-1]
    return features.mean(dim=(2, 3)) if features.ndim == 4 else features.flatten(1)


def with_embed(model: nn.Module, embed: EmbedFn) -> nn.Module:
    """`model` itself, its class extended with `embed(x) = embed(model, x)`."""
    model.__class__ = _embedding_class(type(model), embed)
    return model


def with_head_embed(model: nn.Module, num_classes: int, what: str) -> nn.Module:
    """`model` with `embed` = the input of its classifier; InputError when it has no classifier."""
    head = find_head(model, num_classes)
    if head is None:
        raise InputError(f"{what} has no embed() and no final nn.Linear (or 1×1 conv) with {num_classes} "
                         f"outputs whose input could serve as its features")
    setattr(model, HEAD_ATTR, head)
    return with_embed(model, embed_from_head)


@lru_cache(maxsize=None)
def _embedding_class(cls: type[nn.Module], embed: EmbedFn) -> type[nn.Module]:
    def method(self: nn.Module, x: Tensor) -> Tensor:
        return embed(self, x)

    method.__doc__ = embed.__doc__
    return type(cls.__name__, (cls,), {"embed": method, "__doc__": cls.__doc__})
