"""Coreset baselines: a class-balanced random subset, herding and k-center in a feature space.

They pick real images, so their cost is one embedding pass over the train split plus a greedy
selection of IPC samples per class (vectorized over the class's candidates).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from ddray.errors import InputError
from ddray.methods.features import random_net, train_embeddings
from ddray.engine.pools import ClassPools, seeded_generator
from ddray.methods.contract import DistilledSet, MethodParams, NetParams, SynthContext
from ddray.methods.registry import register_method
from ddray.methods.validate import class_major_labels

# The random *method* is its own draw, distinct from the rdm arm's subset for the same seed.
RANDOM_STREAM = 7919


class RandomParams(MethodParams):
    """The random baseline has no knobs: the seed picks the subset."""


class SelectionParams(NetParams):
    features: Literal["random", "trained", "teacher"] = Field(
        "random",
        description="feature space: 'random' = embed() of a randomly initialized `arch` seeded by the seed "
        "(DM's and DD-Ranking's coreset baselines); 'trained' = embed() of `arch` trained on the full train "
        "split, i.e. the full-data arm's weights, no extra training (the coreset papers: herding in iCaRL, "
        "k-center in Sener & Savarese); 'teacher' = the spec's teacher's embed()",
    )


def _uses_teacher(params: SelectionParams) -> bool:
    return getattr(params, "features", "random") == "teacher"


def _trained_arch(params: SelectionParams) -> str | None:
    return params.arch if getattr(params, "features", "random") == "trained" else None


def _take(ctx: SynthContext, idx: Tensor) -> DistilledSet:
    """The real images at class-major train indices `idx` (only those are read), normalized on the context's device."""
    images = ctx.data.train_images(idx.reshape(-1).cpu(), ctx.device)
    return DistilledSet(images, class_major_labels(ctx.data.num_classes, ctx.ipc, ctx.device))


@register_method("random", RandomParams)
def synth_random(ctx: SynthContext) -> DistilledSet:
    """Class-balanced random real subset (a separate draw from the rdm arm's for the same seed)."""
    pools = ClassPools.of(ctx.data.train.labels, ctx.data.num_classes)
    idx = pools.sample(ctx.ipc, seeded_generator(ctx.seed, RANDOM_STREAM), "images")
    return _take(ctx, idx)


def train_features(ctx: SynthContext) -> Tensor:
    """Embeddings of the whole train split in the feature space the params ask for (cached per node:
    herding and k-center at every IPC of a seed share one embedding pass)."""
    params: SelectionParams = ctx.params  # type: ignore[assignment]
    if params.features in ("teacher", "trained"):  # the planner hands the trained weights in as the teacher
        if ctx.teacher is None:
            raise InputError(f"features '{params.features}' needs a teacher network (set `teachers` in the spec)",
                             path="features")
        net = ctx.teacher.to(ctx.device)
    else:
        net = random_net(params.arch, ctx.data, ctx.seed, ctx.device)
    describe = {"features": params.features, "arch": params.arch if params.features == "random" else "teacher",
                "seed": ctx.seed}
    return train_embeddings(net, ctx.data, ctx.device, describe)


def herd(f: Tensor, n: int) -> Tensor:
    """Welling's herding: greedily add the sample that moves the running mean closest to the mean."""
    mu = f.mean(0)
    total = torch.zeros_like(mu)
    taken = torch.zeros(f.shape[0], dtype=torch.bool, device=f.device)
    picks = []
    for i in range(n):
        dist = (mu - (total + f) / (i + 1)).square().sum(1)
        dist[taken] = float("inf")
        j = int(torch.argmin(dist))
        picks.append(j)
        taken[j] = True
        total = total + f[j]
    return torch.tensor(picks, dtype=torch.int64)


def kcenter(f: Tensor, n: int) -> Tensor:
    """Greedy k-center: start nearest the class mean, then repeatedly take the farthest sample."""
    first = int(torch.argmin((f - f.mean(0)).square().sum(1)))
    picks = [first]
    nearest = (f - f[first]).square().sum(1)
    for _ in range(n - 1):
        j = int(torch.argmax(nearest))
        picks.append(j)
        nearest = torch.minimum(nearest, (f - f[j]).square().sum(1))
    return torch.tensor(picks, dtype=torch.int64)


def _select(ctx: SynthContext, pick) -> DistilledSet:
    pools = ClassPools.of(ctx.data.train.labels, ctx.data.num_classes)
    if ctx.ipc > pools.smallest:
        raise InputError(f"ipc {ctx.ipc} exceeds the smallest class ({pools.smallest} training images)", path="ipc")
    feats = train_features(ctx)
    rows = []
    for c in range(ctx.data.num_classes):
        members = pools.members(c)
        rows.append(members[pick(feats[members.to(feats.device)], ctx.ipc).cpu()])
    return _take(ctx, torch.stack(rows))


@register_method("herding", SelectionParams, teacher_if=_uses_teacher, trained_arch=_trained_arch)
def synth_herding(ctx: SynthContext) -> DistilledSet:
    """Herding: real images whose running feature mean tracks the class mean (Welling 2009)."""
    return _select(ctx, herd)


@register_method("kcenter", SelectionParams, teacher_if=_uses_teacher, trained_arch=_trained_arch)
def synth_kcenter(ctx: SynthContext) -> DistilledSet:
    """K-center: real images covering each class in feature space, farthest-first (Sener & Savarese 2018)."""
    return _select(ctx, kcenter)
