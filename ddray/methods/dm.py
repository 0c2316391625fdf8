"""DM (Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV 2023).

Each iteration draws a fresh randomly initialized network and moves the synthetic images so that,
per class, the mean embedding of the synthetic images matches that of a real batch. All classes go
through the network in one batch (the default instance-norm ConvNet normalizes per sample, so this
is the same loss as DM's per-class loop, K times fewer launches).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ddray.methods.features import embedder, random_net
from ddray.engine.pools import ClassPools, seeded_generator
from ddray.methods.contract import DistilledSet, NetParams, SynthContext
from ddray.methods.registry import register_method
from ddray.methods.validate import class_major_labels

DM_STREAM = 1


class DMParams(NetParams):
    iterations: int = Field(200, ge=1, description="image updates (DM uses 20000 on CIFAR; 200 suits digits)")
    lr_img: float = Field(1.0, gt=0, description="SGD learning rate on the synthetic pixels (DM: 1.0)")
    momentum: float = Field(0.5, ge=0, lt=1, description="SGD momentum on the pixels (DM: 0.5)")
    batch_real: int = Field(256, ge=1, description="real images per class per iteration (capped at the smallest class)")
    init: Literal["real", "noise"] = Field("real", description="start from random real images of each class, or from N(0, 1) noise")
    dsa: bool = Field(True, description="DSA augmentation, the same draw (seed) on the real and the synthetic batch")


def _dsa():
    """The engine's batched DSA (one op per batch), if the engine provides it."""
    try:
        from ddray.engine.augment import dsa
    except ImportError:
        return None
    return dsa


@register_method("dm", DMParams)
def synth_dm(ctx: SynthContext) -> DistilledSet:
    """Distribution Matching: match per-class mean embeddings under random networks (Zhao & Bilen 2023)."""
    p: DMParams = ctx.params  # type: ignore[assignment]
    data, dev, k, ipc = ctx.data, ctx.device, ctx.data.num_classes, ctx.ipc
    gen = seeded_generator(ctx.seed, DM_STREAM)
    pools = ClassPools.of(data.train.labels, k)
    data.train.resident()  # real batches come from the whole split: one decoded copy on the node, when it fits
    if p.init == "real":
        syn = data.train_images(pools.sample(ipc, gen, "images").reshape(-1))
    else:
        syn = torch.randn((k * ipc, *data.image_shape), generator=gen)
    syn = syn.to(dev).requires_grad_(True)
    n_real = min(p.batch_real, pools.smallest)
    opt = torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum)
    augment = _dsa() if p.dsa else None
    for _ in range(p.iterations):
        net_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        net = random_net(p.arch, data, net_seed, dev).train()
        embed = embedder(net)
        real = data.train_images(pools.sample(n_real, gen).reshape(-1), dev)
        fake = syn
        if augment is not None:  # siamese: the synthetic batch replays the real batch's draw
            state = gen.get_state()
            real = augment(real, gen)
            twin = torch.Generator()
            twin.set_state(state)
            fake = augment(fake, twin)
        with torch.no_grad():
            mu_real = embed(real).reshape(k, n_real, -1).mean(1)
        mu_syn = embed(fake).reshape(k, ipc, -1).mean(1)
        loss = (mu_real - mu_syn).square().sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return DistilledSet(syn.detach(), class_major_labels(k, ipc, dev))
