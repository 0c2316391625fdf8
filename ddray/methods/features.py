"""Feature networks: a randomly initialized ConvNet seeded by the trial seed, or the teacher.

DM, herding and k-center all compare samples through `embed(x)`. Building the random net under a
forked RNG keeps its weights a function of the seed alone without touching anyone's global RNG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ddray.errors import InputError

if TYPE_CHECKING:
    from ddray.data import RealData

EMBED_BATCH = 1024


def random_net(arch: str, data: RealData, seed: int, device: torch.device) -> nn.Module:
    """A frozen, randomly initialized `arch` whose weights depend only on `seed`."""
    from ddray.models import build_model

    c, h, _ = data.image_shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2**63 - 1))
        net = build_model(arch, c, data.num_classes, h)
    return freeze(net.to(device))


def freeze(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def embedder(net: nn.Module, name: str = "feature network"):
    """`net.embed`, or logits for a network without one (a user's teacher)."""
    fn = getattr(net, "embed", None)
    if fn is None:
        if not callable(net):
            raise InputError(f"{name} is not callable")
        return net
    return fn


@torch.no_grad()
def embed_all(net: nn.Module, x: Tensor, device: torch.device, batch: int = EMBED_BATCH) -> Tensor:
    """Embeddings of all of `x` (CPU or device) in eval mode, batched, on `device`."""
    was_training = net.training
    net.eval()
    fn = embedder(net)
    out = torch.cat([fn(x[i : i + batch].to(device, non_blocking=True)).float() for i in range(0, x.shape[0], batch)])
    net.train(was_training)
    return out
