"""Targets of the soft and hybrid label settings.

Soft (epoch-wise soft labels, RD³/SRe2L): one teacher labels the *same* augmented batch the student
sees, every step, in eval mode without gradients. Hybrid: several teachers label it, each teacher's
logits are rescaled and the rescaled logits averaged. Without a teacher, a distilled set's fixed
logits (its labels.pt, (N, K)) are the targets.

Reading of DESIGN §5 "each rescaled to the mean Frobenius norm of the batch, then averaged": for a
batch, teacher i gives a logit matrix Z_i (B×K) with Frobenius norm n_i = ‖Z_i‖_F; the target norm
is n̄ = mean_i n_i; the label is mean_i (n̄ / n_i)·Z_i. Rescaling puts teachers whose logits live
on different scales (e.g. a ConvNet and a ResNet) on an equal footing before averaging, while
keeping the batch's overall logit scale, which the KL temperature then acts on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

_EPS = 1e-12


def rescale_and_average(logits: Sequence[Tensor]) -> Tensor:
    """Hybrid label of one batch: each Z_i scaled to the mean Frobenius norm, then averaged."""
    if not logits:
        raise ValueError("hybrid labels need at least one teacher's logits")
    zs = [z.float() for z in logits]
    norms = torch.stack([torch.linalg.matrix_norm(z) for z in zs])  # Frobenius by default
    target = norms.mean()
    return torch.stack([z * (target / n.clamp_min(_EPS)) for z, n in zip(zs, norms)]).mean(dim=0)


@torch.no_grad()
def teacher_logits(teachers: Sequence[nn.Module], x: Tensor, hybrid: bool) -> Tensor:
    """Float32 targets for batch `x`: the first teacher's logits, or the hybrid of all of them.

    Teachers must already be in eval mode (the loop sets it once); autocast set by the caller applies.
    """
    if not teachers:
        raise ValueError("soft labels from teachers need at least one teacher")
    if not hybrid:
        return teachers[0](x).float()
    return rescale_and_average([t(x) for t in teachers])


def prepare_teachers(teachers: Sequence[nn.Module], device: torch.device) -> list[nn.Module]:
    """Move teachers to the device, freeze them and put them in eval mode (BN uses running stats)."""
    out = []
    for t in teachers:
        t = t.to(device).eval()
        for p in t.parameters():
            p.requires_grad_(False)
        out.append(t)
    return out


@torch.no_grad()
def label_once(teachers: Sequence[nn.Module], x: Tensor, prep: Callable[[Tensor], Tensor] | None, hybrid: bool,
               device: torch.device, batch: int = 256) -> Tensor:
    """Fixed (N, K) float32 logits of a set, labelled once on its un-augmented images.

    DD-Ranking's soft_label_mode S: a distilled set brings its own soft labels, and the random
    baseline it is compared with gets the teacher's logits of its images, computed once before
    training (not on every augmented batch). `prep` turns stored pixels into network input.
    """
    frozen = prepare_teachers(teachers, device)
    out = []
    for i in range(0, int(x.shape[0]), batch):
        xb = x[i:i + batch].to(device)
        out.append(teacher_logits(frozen, prep(xb) if prep is not None else xb.float(), hybrid).cpu())
    return torch.cat(out)
