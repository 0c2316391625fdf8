"""Batched, seeded training-time augmentation.

Every op takes a whole batch (B, C, H, W) and a CPU `torch.Generator` and returns a batch: no
per-sample Python. The random *parameters* of an op are O(B) numbers drawn on the CPU generator and
moved to the batch's device; the pixels never leave the device. Drawing parameters on the CPU makes
one seed give the same augmentation on CPU and GPU, and keeps resume exact (one generator state).

DSA follows DSA's `DiffAugment` in single mode ("one random op per batch") with DD-Ranking's
`ParamDiffAug` values, siamese off (every sample draws its own parameters):
scale 1.2, rotate 15°, flip p=0.5, brightness 1.0, saturation 2.0, contrast 0.5, crop-pad 0.125,
cutout 0.5. Scale and rotate use `affine_grid`/`grid_sample` (align_corners=True) as DSA does; crop
is DSA's integer translation of a 1-pixel zero-padded image, done with one gather.

CutMix and Mixup return the mix (`lam`, `perm`) so hard-label losses can mix their targets; with a
teacher the teacher labels the mixed batch itself and the mix info is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ddray.protocols import DSA_OPS, Augment

# DD-Ranking / DSA ParamDiffAug.
DSA_SCALE = 1.2
DSA_ROTATE_DEG = 15.0
DSA_FLIP_P = 0.5
DSA_BRIGHTNESS = 1.0
DSA_SATURATION = 2.0
DSA_CONTRAST = 0.5
DSA_CROP_PAD = 0.125
DSA_CUTOUT = 0.5


@dataclass
class AugOut:
    """An augmented batch; `perm`/`lam` describe a CutMix/Mixup: x = lam·x + (1−lam)·x[perm]."""

    x: Tensor
    perm: Tensor | None = None
    lam: float | None = None

    @property
    def mixed(self) -> bool:
        return self.perm is not None


AugmentFn = Callable[[Tensor, torch.Generator], AugOut]
Op = Callable[[Tensor, torch.Generator], Tensor]


def _rand(gen: torch.Generator, *shape: int, like: Tensor) -> Tensor:
    """Uniform [0, 1) parameters on the CPU generator, moved to the batch's device and dtype."""
    return torch.rand(*shape, generator=gen).to(device=like.device, dtype=like.dtype)


def _randint(gen: torch.Generator, low: int, high: int, n: int, like: Tensor) -> Tensor:
    return torch.randint(low, high, (n,), generator=gen).to(like.device)


def _affine(x: Tensor, theta: Tensor, align_corners: bool) -> Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


# ---------------------------------------------------------------- DSA ops (DiffAugment, siamese off)
def dsa_scale(x: Tensor, gen: torch.Generator) -> Tensor:
    b, r = x.shape[0], DSA_SCALE
    sx = _rand(gen, b, like=x) * (r - 1.0 / r) + 1.0 / r
    sy = _rand(gen, b, like=x) * (r - 1.0 / r) + 1.0 / r
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = sx, sy
    return _affine(x, theta, align_corners=True)


def dsa_rotate(x: Tensor, gen: torch.Generator) -> Tensor:
    b = x.shape[0]
    ang = (_rand(gen, b, like=x) - 0.5) * 2 * DSA_ROTATE_DEG / 180 * math.pi
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    return _affine(x, theta, align_corners=True)


def dsa_flip(x: Tensor, gen: torch.Generator) -> Tensor:
    return flip(x, gen, p=DSA_FLIP_P)


def dsa_color(x: Tensor, gen: torch.Generator) -> Tensor:
    """DSA's 'color': brightness, then saturation, then contrast, each with its own draw."""
    b = x.shape[0]
    x = x + (_rand(gen, b, 1, 1, 1, like=x) - 0.5) * DSA_BRIGHTNESS
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * (_rand(gen, b, 1, 1, 1, like=x) * DSA_SATURATION) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (_rand(gen, b, 1, 1, 1, like=x) + DSA_CONTRAST) + m


def dsa_crop(x: Tensor, gen: torch.Generator) -> Tensor:
    """Translate by up to 12.5% of the side; pixels shifted in from outside are zero (DSA's pad-1 clamp)."""
    b, _, h, w = x.shape
    sh, sw = int(h * DSA_CROP_PAD + 0.5), int(w * DSA_CROP_PAD + 0.5)
    ty = _randint(gen, -sh, sh + 1, b, x).view(b, 1, 1)
    tx = _randint(gen, -sw, sw + 1, b, x).view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    gy = torch.clamp(rows + ty + 1, 0, h + 1)
    gx = torch.clamp(cols + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    flat = (gy * (w + 2) + gx).view(b, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, flat).view_as(x)


def dsa_cutout(x: Tensor, gen: torch.Generator) -> Tensor:
    """Zero one (H/2)×(W/2) square per sample, centred anywhere (clipped at the border)."""
    b, _, h, w = x.shape
    ch, cw = int(h * DSA_CUTOUT + 0.5), int(w * DSA_CUTOUT + 0.5)
    oy = _randint(gen, 0, h + (1 - ch % 2), b, x).view(b, 1, 1)
    ox = _randint(gen, 0, w + (1 - cw % 2), b, x).view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    y0, x0 = oy - ch // 2, ox - cw // 2
    inside = (rows >= y0) & (rows < y0 + ch) & (cols >= x0) & (cols < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


DSA_FNS: dict[str, Op] = {
    "scale": dsa_scale, "rotate": dsa_rotate, "flip": dsa_flip,
    "color": dsa_color, "crop": dsa_crop, "cutout": dsa_cutout,
}


def dsa(x: Tensor, gen: torch.Generator, ops: Sequence[str] = DSA_OPS) -> Tensor:
    """One op per batch, drawn uniformly from `ops` (DSA's single mode)."""
    op = ops[int(torch.randint(len(ops), (1,), generator=gen))]
    return DSA_FNS[op](x, gen)


# ---------------------------------------------------------------- standard ops
def flip(x: Tensor, gen: torch.Generator, p: float = 0.5) -> Tensor:
    """Horizontal flip of each sample with probability p."""
    mask = _rand(gen, x.shape[0], 1, 1, 1, like=x) < p
    return torch.where(mask, x.flip(3), x)


def random_resized_crop(
    x: Tensor, gen: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """RandomResizedCrop back to the input size, one affine grid per sample.

    Area fraction ~ U(scale), log aspect ratio ~ U(log ratio), box sides clipped to the image
    (torchvision retries 10 times instead; clipping keeps it one batched op), box position uniform.
    """
    b = x.shape[0]
    area = torch.empty(b).uniform_(scale[0], scale[1], generator=gen)
    logr = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    ar = torch.exp(logr)
    fw = torch.sqrt(area * ar).clamp(max=1.0)  # box width as a fraction of W
    fh = torch.sqrt(area / ar).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - fw)  # centre in normalized coords
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - fh)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = fw, cx
    theta[:, 1, 1], theta[:, 1, 2] = fh, cy
    return _affine(x, theta.to(x.device), align_corners=False)


def patch_shuffle(x: Tensor, gen: torch.Generator, k: int, strips: bool = False) -> Tensor:
    """Cut each image into a k×k grid and permute the patches (its own permutation per sample).

    `strips`: DD-Ranking's `ShufflePatches(k)`: the k column strips are shuffled, then the k row
    strips, so patch (r, c) comes from (σ(r), τ(c)); otherwise any of the (k²)! arrangements.
    When the side is not a multiple of k, the bottom/right remainder stays where it is.
    """
    b, c, h, w = x.shape
    ph, pw = h // k, w // k
    if ph == 0 or pw == 0:
        return x
    hh, ww = ph * k, pw * k
    if strips:
        cols = torch.argsort(torch.rand(b, k, generator=gen), dim=1)
        rows = torch.argsort(torch.rand(b, k, generator=gen), dim=1)
        perm = (rows.unsqueeze(2) * k + cols.unsqueeze(1)).view(b, k * k).to(x.device)
    else:
        perm = torch.argsort(torch.rand(b, k * k, generator=gen), dim=1).to(x.device)
    core = x[:, :, :hh, :ww].reshape(b, c, k, ph, k, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, k * k, c, ph, pw)
    core = core.gather(1, perm.view(b, k * k, 1, 1, 1).expand(-1, -1, c, ph, pw))
    core = core.view(b, k, k, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, hh, ww)
    out = x.clone()
    out[:, :, :hh, :ww] = core
    return out


def crop_at(x: Tensor, padding: int, top: Tensor, left: Tensor, fill: Sequence[float] | None = None) -> Tensor:
    """Each sample's H×W window at (top[i], left[i]) of the batch padded by `padding` with `fill`
    (per channel; None: 0), with one gather. What torchvision's `RandomCrop(size, padding)` does
    to one image once it has drawn its offsets."""
    b, c, h, w = x.shape
    p = padding
    padded = F.pad(x, [p, p, p, p])
    if fill is not None:
        inside = F.pad(torch.ones(1, 1, h, w, device=x.device, dtype=torch.bool), [p, p, p, p])
        value = torch.tensor(fill, device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        padded = torch.where(inside, padded, value)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + top.view(b, 1, 1))
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + left.view(b, 1, 1))
    flat = (rows * (w + 2 * p) + cols).view(b, 1, h * w).expand(-1, c, -1)
    return padded.flatten(2).gather(2, flat).view_as(x)


def random_crop(x: Tensor, gen: torch.Generator, padding: int, fill: Sequence[float] | None = None) -> Tensor:
    """RandomCrop(size, padding): offsets uniform in [0, 2·padding] per sample (torchvision's draw).

    `fill` is the padding value per channel of the *normalized* batch: torchvision pads pixels
    with 0 before Normalize, which is −mean/std afterwards (`train_student` passes that).
    """
    b = x.shape[0]
    top = _randint(gen, 0, 2 * padding + 1, b, x)
    left = _randint(gen, 0, 2 * padding + 1, b, x)
    return crop_at(x, padding, top, left, fill)


def gaussian_noise(x: Tensor, gen: torch.Generator, sigma: float) -> Tensor:
    """x + σ·N(0, 1), unclipped: torchvision's `GaussianNoise(mean=0, sigma, clip=False)`, which
    DD-Ranking applies after Normalize.

    The noise is drawn on the batch's device from a generator seeded by the CPU generator (a
    whole batch of noise is not moved from the CPU), so it differs between CPU and GPU runs.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    noise_gen = torch.Generator(device=x.device).manual_seed(seed)
    return x + torch.randn(x.shape, generator=noise_gen, device=x.device, dtype=x.dtype) * sigma


def _beta(gen: torch.Generator, a: float) -> float:
    """A Beta(a, a) draw driven by the torch generator (torch's Beta sampler takes no generator)."""
    s = int(torch.randint(0, 2**62, (1,), generator=gen))
    return float(np.random.default_rng(s).beta(a, a))


def cutmix(x: Tensor, gen: torch.Generator, beta: float) -> AugOut:
    """Paste one box from a permuted batch; lam is the kept area after clipping the box."""
    b, _, h, w = x.shape
    lam = _beta(gen, beta)
    rh, rw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y1, y2 = max(cy - rh // 2, 0), min(cy + rh // 2, h)
    x1, x2 = max(cx - rw // 2, 0), min(cx + rw // 2, w)
    perm = torch.randperm(b, generator=gen).to(x.device)
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    return AugOut(out, perm, 1.0 - (y2 - y1) * (x2 - x1) / (h * w))


def mixup(x: Tensor, gen: torch.Generator, alpha: float) -> AugOut:
    lam = _beta(gen, alpha)
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    return AugOut(lam * x + (1 - lam) * x[perm], perm, lam)


def build_augment(augment: Augment, fill: Sequence[float] | None = None) -> AugmentFn:
    """The batch augmentation of `augment`: DSA, RRC, random crop, flip, patch shuffle, Gaussian
    noise, then one of CutMix/Mixup (DD-Ranking's order: its per-image transforms, Normalize and
    noise included, then its batch CutMix/Mixup).

    When both CutMix and Mixup are on, each batch uses one of them with probability ½ (timm's rule).
    An inactive `augment` gives the identity. `fill`: RandomCrop's padding value per channel.
    """
    ops: list[Op] = []
    if augment.dsa:
        dsa_ops = tuple(augment.dsa_ops)
        ops.append(lambda x, g: dsa(x, g, dsa_ops))
    if augment.rrc:
        rrc_scale = tuple(augment.rrc_scale)
        ops.append(lambda x, g: random_resized_crop(x, g, rrc_scale))  # type: ignore[arg-type]
    if augment.random_crop_padding:
        pad = augment.random_crop_padding
        ops.append(lambda x, g: random_crop(x, g, pad, fill))
    if augment.flip:
        ops.append(flip)
    if augment.patch_shuffle:
        k, strips = augment.patch_shuffle, augment.patch_shuffle_strips
        ops.append(lambda x, g: patch_shuffle(x, g, k, strips))
    if augment.gaussian_noise:
        sigma = augment.gaussian_noise
        ops.append(lambda x, g: gaussian_noise(x, g, sigma))
    mixers: list[Callable[[Tensor, torch.Generator], AugOut]] = []
    if augment.cutmix:
        b = augment.cutmix
        mixers.append(lambda x, g: cutmix(x, g, b))
    if augment.mixup:
        a = augment.mixup
        mixers.append(lambda x, g: mixup(x, g, a))

    def apply(x: Tensor, gen: torch.Generator) -> AugOut:
        for op in ops:
            x = op(x, gen)
        if not mixers:
            return AugOut(x)
        pick = 0 if len(mixers) == 1 else int(torch.randint(len(mixers), (1,), generator=gen))
        return mixers[pick](x, gen)

    return apply
