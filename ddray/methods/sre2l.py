"""SRe2L's recover step (Yin et al., "Squeeze, Recover and Relabel", NeurIPS 2023).

Images start as noise and are optimized so the (squeezed = trained) teacher classifies them as
their class while their BatchNorm statistics match the running statistics the teacher stored
from real data. Relabeling is the evaluation protocol's job (soft labels), so hard labels return.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ddray.errors import InputError
from ddray.engine.pools import seeded_generator
from ddray.methods.contract import CheckContext, DistilledSet, MethodParams, SynthContext
from ddray.methods.registry import register_method
from ddray.methods.validate import class_major_labels

SRE2L_STREAM = 2


class SRe2LParams(MethodParams):
    iterations: int = Field(500, ge=1, description="recovery steps per batch (SRe2L: 1000 on CIFAR/Tiny, 4000 on ImageNet)")
    lr: float = Field(0.25, gt=0, description="Adam learning rate on the pixels, cosine-decayed (SRe2L: 0.25)")
    r_bn: float = Field(0.01, ge=0, description="weight of the BatchNorm statistics loss (SRe2L: 0.01)")
    first_bn_multiplier: float = Field(10.0, ge=0, description="extra weight of the first BatchNorm layer (SRe2L: 10)")
    jitter: int | None = Field(None, ge=0, description="max random roll in pixels per step; null = side/16 (at least 1)")
    flip: bool = Field(True, description="random horizontal flip of the batch per step")
    batch_size: int = Field(100, ge=1, description="images recovered together (rounded to whole rounds of one image per class)")

    def check(self, ctx: CheckContext) -> list[tuple[str, str]]:
        """The teacher arch, built on meta tensors (no memory, no init), must have BatchNorm layers."""
        if ctx.teacher_arch is None:
            return []
        from ddray.models import build_model

        c, h, _ = ctx.meta.image_shape
        try:
            with torch.device("meta"):
                teacher = build_model(ctx.teacher_arch, c, ctx.meta.num_classes, h)
        except (InputError, ValueError):
            return []  # a bad arch is the arch checks' to report
        return [] if bn_layers(teacher) else [("", f"{NO_BN}; the teacher '{ctx.teacher_arch}' has none")]


NO_BN = ("sre2l needs a BatchNorm teacher (its recover step matches BatchNorm statistics); "
         "use a BN arch such as convnet-d3-bn or resnet18")


def bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """The BatchNorm layers whose running statistics SRe2L matches."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


class _BNStats:
    """Forward hooks that collect ||μ_batch − running_mean||₂ + ||σ²_batch − running_var||₂ per BN layer."""

    def __init__(self, teacher: nn.Module):
        self.layers = bn_layers(teacher)
        self.losses: list[Tensor] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.BatchNorm2d, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1).var(1, unbiased=False)
        self.losses.append(torch.norm(module.running_mean - mean, 2) + torch.norm(module.running_var - var, 2))

    def take(self, first_multiplier: float) -> Tensor:
        losses, self.losses = self.losses, []
        return sum((first_multiplier if i == 0 else 1.0) * l for i, l in enumerate(losses))  # type: ignore[return-value]

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def pixel_bounds(data, device: torch.device) -> tuple[Tensor, Tensor]:
    """Normalized values of pixels 0 and 1 per channel: recovered images stay displayable."""
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


@register_method("sre2l", SRe2LParams, needs_teacher=True)
def synth_sre2l(ctx: SynthContext) -> DistilledSet:
    """SRe2L recover: images from noise matching the teacher's class and BatchNorm statistics."""
    p: SRe2LParams = ctx.params  # type: ignore[assignment]
    teacher, data, dev, k, ipc = ctx.teacher, ctx.data, ctx.device, ctx.data.num_classes, ctx.ipc
    if teacher is None:
        raise InputError("sre2l needs a teacher (set `teachers` in the spec)", path="teachers")
    teacher = teacher.to(dev).eval()
    stats = _BNStats(teacher)
    if not stats.layers:
        stats.close()
        raise InputError(NO_BN, path="teachers.arch")
    gen = seeded_generator(ctx.seed, SRE2L_STREAM)
    lo, hi = pixel_bounds(data, dev)
    side = data.image_shape[1]
    jitter = p.jitter if p.jitter is not None else max(1, round(side / 16))
    # Rows in round-major order (one image per class per round), recovered in whole rounds.
    labels = torch.arange(k, device=dev).repeat(ipc)
    rounds = max(1, p.batch_size // k)
    out = torch.empty((k * ipc, *data.image_shape), device=dev)
    saved = [q.requires_grad for q in teacher.parameters()]
    for q in teacher.parameters():
        q.requires_grad_(False)
    try:
        for start in range(0, k * ipc, rounds * k):
            stop = min(start + rounds * k, k * ipc)
            out[start:stop] = _recover(teacher, stats, labels[start:stop], data.image_shape, p, jitter, gen, lo, hi, dev)
    finally:
        stats.close()
        for q, r in zip(teacher.parameters(), saved):
            q.requires_grad_(r)
    order = torch.arange(k * ipc, device=dev).view(ipc, k).t().reshape(-1)  # round-major -> class-major
    return DistilledSet(out[order].contiguous(), class_major_labels(k, ipc, dev))


def _recover(teacher, stats, y, shape, p, jitter, gen, lo, hi, dev) -> Tensor:
    x = torch.randn((y.shape[0], *shape), generator=gen).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=p.lr, betas=(0.5, 0.9), eps=1e-8)
    shifts = torch.randint(-jitter, jitter + 1, (p.iterations, 2), generator=gen).tolist()
    flips = (torch.rand(p.iterations, generator=gen) < 0.5).tolist()
    for it in range(p.iterations):
        for group in opt.param_groups:
            group["lr"] = 0.5 * p.lr * (1 + math.cos(math.pi * it / p.iterations))
        xj = torch.roll(x, shifts=tuple(shifts[it]), dims=(2, 3))
        if p.flip and flips[it]:
            xj = xj.flip(3)
        loss = F.cross_entropy(teacher(xj), y) + p.r_bn * stats.take(p.first_bn_multiplier)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    return x.detach()
