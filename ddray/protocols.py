"""Post-evaluation protocols: every knob that changes the numbers, and the named presets.

A protocol is the recipe that turns a training set into a test accuracy. RD³'s finding is that
methods were compared under different recipes; here a recipe is one pydantic object, every knob
has a name, and a preset is just a dict of knob values that a spec overrides. Everything in a
resolved `Protocol` enters the trial key, so it must hold only knobs that change numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from ddray.errors import unknown
from ddray.plain_numbers import PlainNumbers

LabelSetting = Literal["hard", "soft", "hybrid"]
DSA_OPS = ("scale", "rotate", "flip", "color", "crop", "cutout")


class Augment(PlainNumbers):
    """Batched, on-device augmentation applied to every training batch when the arm's aug is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dsa: bool = Field(False, description="DSA: one random op per batch among dsa_ops, DD-Ranking's parameters (scale 1.2, rotate 15°, crop 0.125, cutout 0.5)")
    dsa_ops: tuple[str, ...] = Field(DSA_OPS, description="the DSA ops to draw from")
    rrc: bool = Field(False, description="RandomResizedCrop to the input size")
    rrc_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range")
    flip: bool = Field(False, description="random horizontal flip (per sample, batched)")
    cutmix: float | None = Field(None, gt=0, description="CutMix with Beta(β, β) box areas; null = off")
    mixup: float | None = Field(None, gt=0, description="Mixup with Beta(α, α) weights; null = off")
    patch_shuffle: int | None = Field(None, ge=2, description="shuffle a k×k grid of patches; null = off")

    @model_validator(mode="after")
    def _check(self) -> Augment:
        bad = [op for op in self.dsa_ops if op not in DSA_OPS]
        if bad:
            raise ValueError(unknown("DSA op", bad[0], DSA_OPS))
        lo, hi = self.rrc_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError("rrc_scale must satisfy 0 < lo <= hi <= 1")
        return self

    @property
    def active(self) -> bool:
        return bool(self.dsa or self.rrc or self.flip or self.cutmix or self.mixup or self.patch_shuffle)


class Protocol(PlainNumbers):
    """One fully specified post-evaluation recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="preset this protocol was resolved from")
    epochs: int = Field(gt=0, description="training epochs E")
    batch_size: int = Field(gt=0, description="training batch size (capped at the training-set size)")
    optimizer: Literal["sgd", "adam", "adamw"] = Field(description="optimizer")
    lr: float | tuple[float, ...] = Field(description="learning rate, or a list to search on a validation split (same list for syn and rdm arms)")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    schedule: Literal["cosine", "step", "constant"] = Field(description="learning-rate schedule")
    zeta: float | None = Field(None, gt=0, description="cosine smoothing ζ: lr(e)=lr0·½(1+cos(π·e/(ζ·E))); null = 1 for ResNet-18, 2 otherwise")
    step_at: tuple[float, ...] = Field((0.5,), description="step schedule: fractions of E where lr is multiplied by step_gamma")
    step_gamma: float = Field(0.1, gt=0, description="step schedule factor")
    fresh_optimizer_at_step: bool = Field(False, description="re-create the optimizer at each step (DC's evaluation code does)")
    labels: LabelSetting = Field("hard", description="label setting L of the protocol: hard, soft (one teacher) or hybrid (several)")
    loss: Literal["ce", "kl", "sce", "mse_gt"] = Field("ce", description="loss against the labels")
    temperature: float = Field(1.0, gt=0, description="KL temperature τ")
    kl_t2: bool = Field(False, description="multiply the KL loss by τ²")
    mse_gamma: float = Field(0.1, ge=0, description="mse_gt: weight γ of the cross-entropy term")
    augment: Augment = Field(default_factory=Augment, description="augmentation when the arm's aug is on")
    checkpoint: Literal["last", "best"] = Field("last", description="report the last epoch, or the best of test evaluations every eval_every epochs (DD-Ranking)")
    eval_every: int | None = Field(None, gt=0, description="epochs between test evaluations when checkpoint is best")
    ema: float | None = Field(None, gt=0, lt=1, description="EMA decay of weights used for evaluation; null = off")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="fraction of the real train split held out to pick lr when lr is a list")
    amp: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    channels_last: bool = Field(False, description="channels_last memory format on CUDA (ignored on CPU)")
    compile: bool = Field(False, description="torch.compile the student's training step (inductor): ~1.4x faster ConvNet steps on CPU once compiled (~20 s per process); worth it for long trials, numbers differ from eager in the last bits")

    @model_validator(mode="after")
    def _check(self) -> Protocol:
        if self.checkpoint == "best" and not self.eval_every:
            raise ValueError("checkpoint 'best' needs eval_every")
        if self.labels != "hard" and self.loss == "ce":
            raise ValueError(f"labels '{self.labels}' need a soft loss (kl, sce or mse_gt), not ce")
        if isinstance(self.lr, tuple) and not self.lr:
            raise ValueError("lr search list is empty")
        if any(not lr > 0 for lr in (self.lr if isinstance(self.lr, tuple) else (self.lr,))):  # NaN too
            raise ValueError(f"lr must be > 0, not {self.lr}")
        return self

    def zeta_for(self, arch: str) -> float:
        """ζ used for `arch` (RD³: 1 for ResNet-18, 2 for others)."""
        if self.zeta is not None:
            return self.zeta
        return 1.0 if arch.split(":")[-1].startswith("resnet18") else 2.0


_RRC_FLIP_CUTMIX = {"rrc": True, "rrc_scale": (0.08, 1.0), "flip": True, "cutmix": 1.0}

PRESETS: dict[str, dict[str, Any]] = {
    # RD³'s unified decoupled protocol.
    "rd3": dict(epochs=400, batch_size=50, optimizer="adamw", lr=1e-3, weight_decay=0.01,
                schedule="cosine", labels="soft", loss="kl", temperature=20.0,
                augment=_RRC_FLIP_CUTMIX),
    # DD-Ranking's evaluation of hard-label methods (DC/DSA/DM/MTT).
    "ddranking-hard": dict(epochs=1000, batch_size=256, optimizer="sgd", lr=0.01, momentum=0.9,
                           weight_decay=5e-4, schedule="step", step_at=(0.5,), labels="hard",
                           loss="ce", augment={"dsa": True}),
    # DD-Ranking's evaluation of soft-label methods (SRe2L/RDED/D4M style).
    "ddranking-soft": dict(epochs=300, batch_size=50, optimizer="adamw", lr=1e-3, weight_decay=0.01,
                           schedule="cosine", zeta=2.0, labels="soft", loss="kl", temperature=20.0,
                           augment={**_RRC_FLIP_CUTMIX, "rrc_scale": (0.5, 1.0)}),
    # DC/DSA/DM papers' hard-label evaluation as in DC's code.
    "classic": dict(epochs=300, batch_size=256, optimizer="sgd", lr=0.01, momentum=0.9,
                    weight_decay=5e-4, schedule="step", step_at=(0.5,), fresh_optimizer_at_step=True,
                    labels="hard", loss="ce"),
    # Recipe of the full-data arm and of teachers (epochs come from FULL_EPOCHS per dataset).
    "full": dict(epochs=50, batch_size=256, optimizer="sgd", lr=0.05, momentum=0.9,
                 weight_decay=5e-4, schedule="cosine", zeta=1.0, labels="hard", loss="ce"),
}

# Standard full-data epochs per dataset (a knob of the spec's `full` section).
FULL_EPOCHS = {"digits": 30, "fashion-mnist": 20, "cifar10": 200, "cifar100": 200,
               "tinyimagenet": 100, "imagenet1k": 90}
# Full-data augmentation per dataset: none for digit-like data, crop + flip for natural images.
FULL_AUGMENT = {"digits": {}, "fashion-mnist": {}}
_NATURAL_AUGMENT = {"rrc": True, "rrc_scale": (0.35, 1.0), "flip": True}


def resolve_protocol(preset: str, overrides: dict[str, Any] | None = None) -> Protocol:
    """Preset knobs, then `overrides` on top; raises ValueError/ValidationError on bad knobs."""
    if preset not in PRESETS:
        raise ValueError(unknown("protocol preset", preset, PRESETS))
    knobs = dict(PRESETS[preset])
    for k, v in (overrides or {}).items():
        if k == "augment" and isinstance(v, dict) and isinstance(knobs.get("augment"), dict):
            v = {**knobs["augment"], **v}
        knobs[k] = v
    if isinstance(knobs.get("lr"), list):
        knobs["lr"] = tuple(knobs["lr"])
    return Protocol(name=preset, **knobs)


def full_recipe(dataset_loader: str, overrides: dict[str, Any] | None = None) -> Protocol:
    """The full-data / teacher recipe for a dataset: standard per-dataset epochs and augmentation."""
    base: dict[str, Any] = {"epochs": FULL_EPOCHS.get(dataset_loader, 50),
                            "augment": FULL_AUGMENT.get(dataset_loader, _NATURAL_AUGMENT)}
    base.update(overrides or {})
    return resolve_protocol("full", base)
