"""RDED (Sun et al., "On the Diversity and Realism of Distilled Dataset", CVPR 2024).

For each class: take candidate real images, cut `num_crop` random resized crops from each, score
every crop by the teacher's confidence in its class (−cross-entropy), keep each image's best crop,
keep the `factor²·ipc` most confident ones, and stitch them `factor`×`factor` (each downscaled by
`factor`) into images of the original size. Many realistic patches per image is RDED's diversity;
the teacher's soft relabeling of each patch is the evaluation protocol's job.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from ddray.errors import InputError
from ddray.engine.pools import ClassPools, seeded_generator
from ddray.methods.contract import CheckContext, DistilledSet, MethodParams, SynthContext
from ddray.methods.registry import register_method
from ddray.methods.validate import class_major_labels

RDED_STREAM = 3
CROPS_PER_CHUNK = 8192  # crops cut at once; bounds memory on large images
SCORE_BATCH = 512  # crops per teacher forward pass


class RDEDParams(MethodParams):
    factor: int = Field(2, ge=1, description="patches per side: each image stitches factor×factor patches (1 = whole crops; use 1 for 8×8 digits: their 4×4 patches at factor 2 are unrecognizable)")
    num_crop: int = Field(5, ge=1, description="random resized crops scored per candidate image (RDED: 5)")
    mipc: int = Field(300, ge=1, description="candidate real images per class (RDED: 300; capped at the smallest class)")
    crop_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range of the candidate crops")

    @model_validator(mode="after")
    def _check(self) -> RDEDParams:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("crop_scale must satisfy 0 < lo <= hi <= 1")
        return self

    def side_problem(self, h: int, w: int) -> str | None:
        """Patches tile the image: the factor must divide both sides."""
        if h % self.factor or w % self.factor:
            return f"factor {self.factor} does not divide the {h}×{w} images"
        return None

    def patch_problem(self, ipc: int, smallest_class: int) -> str | None:
        """Each class needs factor²·ipc patches from min(mipc, smallest class) images × num_crop crops."""
        need, n_img = self.factor**2 * ipc, min(self.mipc, smallest_class)
        if n_img * self.num_crop < need:
            return (f"needs {need} patches per class (factor² · ipc {ipc}) but mipc {n_img} × num_crop "
                    f"{self.num_crop} gives only {n_img * self.num_crop}; raise num_crop")
        return None

    def check(self, ctx: CheckContext) -> list[tuple[str, str]]:
        _, h, w = ctx.meta.image_shape
        side = self.side_problem(h, w)
        if side:
            return [("factor", f"{side} of {ctx.meta.name}")]
        return [("num_crop", p) for p in (self.patch_problem(i, ctx.meta.smallest_class) for i in ctx.ipcs) if p]


def _crops(x: Tensor, m: int, scale: tuple[float, float], gen: torch.Generator) -> Tensor:
    """m random resized crops of every image in x: (B, m, C, H, W)."""
    from ddray.engine.augment import random_resized_crop

    b = x.shape[0]
    rep = x.unsqueeze(1).expand(b, m, *x.shape[1:]).reshape(b * m, *x.shape[1:])
    return random_resized_crop(rep, gen, scale).reshape(b, m, *x.shape[1:])


@torch.no_grad()
def _scores(teacher: nn.Module, crops: Tensor, labels: Tensor, batch: int) -> Tensor:
    """Cross-entropy of the teacher on each crop (lower = more confident in the true class)."""
    flat = crops.reshape(-1, *crops.shape[-3:])
    y = labels.repeat_interleave(crops.shape[1])
    ce = torch.cat([F.cross_entropy(teacher(flat[i : i + batch]).float(), y[i : i + batch], reduction="none")
                    for i in range(0, flat.shape[0], batch)])
    return ce.view(crops.shape[0], crops.shape[1])


def stitch(patches: Tensor, factor: int) -> Tensor:
    """(N, f², C, H, W) full-size patches -> (N, C, H, W): each downscaled by f, laid out row-major."""
    n, _, c, h, w = patches.shape
    if factor == 1:
        return patches[:, 0]
    small = F.interpolate(patches.reshape(-1, c, h, w), size=(h // factor, w // factor), mode="bilinear",
                          antialias=True, align_corners=False)
    small = small.view(n, factor, factor, c, h // factor, w // factor)
    return small.permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def _select_class(crops: Tensor, ce: Tensor, need: int) -> Tensor:
    """The `need` most confident patches of one class: each image's best crop, or all crops if too few images."""
    if crops.shape[0] >= need:  # RDED: one crop per image keeps the patches diverse
        best = ce.argmin(1)
        rows = torch.arange(crops.shape[0], device=crops.device)
        cand, cand_ce = crops[rows, best], ce[rows, best]
    else:
        cand, cand_ce = crops.reshape(-1, *crops.shape[2:]), ce.reshape(-1)
    return cand[torch.argsort(cand_ce, stable=True)[:need]]


@register_method("rded", RDEDParams, needs_teacher=True)
def synth_rded(ctx: SynthContext) -> DistilledSet:
    """RDED: teacher-scored realistic crops of real images, stitched factor×factor (Sun et al. 2024)."""
    p: RDEDParams = ctx.params  # type: ignore[assignment]
    data, dev, k, ipc, f = ctx.data, ctx.device, ctx.data.num_classes, ctx.ipc, p.factor
    if ctx.teacher is None:
        raise InputError("rded needs a teacher (set `teachers` in the spec)", path="teachers")
    c, h, w = data.image_shape
    side = p.side_problem(h, w)
    if side:
        raise InputError(f"{side} of {data.name}", path="factor")
    teacher = ctx.teacher.to(dev).eval()
    need = f * f * ipc
    pools = ClassPools.of(data.train.labels, k)
    n_img = min(p.mipc, pools.smallest)
    few = p.patch_problem(ipc, pools.smallest)
    if few:
        raise InputError(few, path="num_crop")
    gen = seeded_generator(ctx.seed, RDED_STREAM)
    idx = pools.sample(n_img, gen, "candidate images")  # K × n_img
    per_chunk = max(1, CROPS_PER_CHUNK // (n_img * p.num_crop))
    chosen = []
    for c0 in range(0, k, per_chunk):
        classes = torch.arange(c0, min(c0 + per_chunk, k))
        x = data.train_images(idx[classes].reshape(-1), dev)  # only the candidates are read
        crops = _crops(x, p.num_crop, p.crop_scale, gen)
        ce = _scores(teacher, crops, classes.to(dev).repeat_interleave(n_img), SCORE_BATCH)
        crops = crops.view(len(classes), n_img, p.num_crop, c, h, w)
        ce = ce.view(len(classes), n_img, p.num_crop)
        chosen += [_select_class(crops[i], ce[i], need) for i in range(len(classes))]
    patches = torch.stack(chosen).view(k * ipc, f * f, c, h, w)
    return DistilledSet(stitch(patches, f).contiguous(), class_major_labels(k, ipc, dev))
