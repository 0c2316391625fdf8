"""Post-evaluation protocols: every knob that changes the numbers, and the named presets.

A protocol is the recipe that turns a training set into a test accuracy. RD³'s finding is that
methods were compared under different recipes; here a recipe is one pydantic object, every knob
has a name, and a preset is just a dict of knob values that a spec overrides. Everything in a
resolved `Protocol` enters the trial key, so it must hold only knobs that change numbers.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from ddray.errors import unknown
from ddray.plain_numbers import PlainNumbers

LabelSetting = Literal["hard", "soft", "hybrid"]
DSA_OPS = ("scale", "rotate", "flip", "color", "crop", "cutout")


class _Knobs(PlainNumbers):
    """Knobs whose dump is hashed into trial keys.

    `ADDED_LATER` names the knobs added after keys were shipped: while such a knob is at its
    default it is left out of the dump (so out of every key), and every key made before it existed
    stays byte-identical (`tests/test_keys_golden.py`); set to anything else, it enters the key.
    One serializer does this for every dump (plan, tuning, rows), so no caller has to remember.
    """

    ADDED_LATER: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_later_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        fields = type(self).model_fields
        for name in self.ADDED_LATER:
            if name in data and getattr(self, name) == fields[name].default:
                del data[name]
        return data  # type: ignore[no-any-return]


class Augment(_Knobs):
    """Batched, on-device augmentation applied to every training batch when the arm's aug is on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({"random_crop_padding", "gaussian_noise", "patch_shuffle_strips"})

    dsa: bool = Field(False, description="DSA: one random op per batch among dsa_ops, DD-Ranking's parameters (scale 1.2, rotate 15°, crop 0.125, cutout 0.5)")
    dsa_ops: tuple[str, ...] = Field(DSA_OPS, description="the DSA ops to draw from")
    rrc: bool = Field(False, description="RandomResizedCrop to the input size")
    rrc_scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop area range")
    flip: bool = Field(False, description="random horizontal flip (per sample, batched)")
    cutmix: float | None = Field(None, gt=0, description="CutMix with Beta(β, β) box areas; null = off")
    mixup: float | None = Field(None, gt=0, description="Mixup with Beta(α, α) weights; null = off")
    patch_shuffle: int | None = Field(None, ge=2, description="shuffle a k×k grid of patches; null = off (DD-Ranking's ShufflePatches(1) is the identity: null)")
    patch_shuffle_strips: bool = Field(False, description="patch_shuffle as DD-Ranking's ShufflePatches (EDC, RDED): shuffle the k column strips, then the k row strips, instead of any permutation of the k×k patches")
    random_crop_padding: int | None = Field(None, ge=1, description="RandomCrop(size, padding=p): zero-pad by p, crop a random window of the input size (SRe2L on CIFAR: 4); null = off")
    gaussian_noise: float | None = Field(None, gt=0, description="add N(0, σ²) noise to the normalized batch, unclipped (torchvision's GaussianNoise after Normalize, SRe2L Tiny IPC 50: 0.1); null = off")

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
        return bool(self.dsa or self.rrc or self.flip or self.cutmix or self.mixup or self.patch_shuffle
                    or self.random_crop_padding or self.gaussian_noise)


class Protocol(_Knobs):
    """One fully specified post-evaluation recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ADDED_LATER: ClassVar[frozenset[str]] = frozenset({
        "zca", "zca_eps", "syn_batch_size", "real_batch_size", "aug_for_hard", "mse_weight", "test_resize",
        "soft_labels"})

    name: str = Field(description="preset this protocol was resolved from")
    epochs: int = Field(gt=0, description="training epochs E")
    batch_size: int = Field(gt=0, description="training batch size (capped at the training-set size)")
    syn_batch_size: int | None = Field(None, gt=0, description="batch size of the arms trained on an IPC-sized set, syn and rdm (DD-Ranking trains its random baseline in its syn mode too); null = batch_size")
    real_batch_size: int | None = Field(None, gt=0, description="batch size when this protocol trains on the whole real train split (the full-data arm and teachers, i.e. in `full:`); null = batch_size")
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
    mse_weight: float = Field(1.0, ge=0, description="mse_gt: weight of the MSE term (EDC: 1.0, with mse_gamma 0.025)")
    soft_labels: Literal["teacher", "set"] = Field("teacher", description="soft/hybrid targets: teacher = the teacher(s) label every augmented batch (DD-Ranking's soft_label_mode M); set = a distilled set's stored (N, K) logits, and the rdm arm's images labelled once, un-augmented, by the teacher(s) (mode S, DATM)")
    aug_for_hard: bool | None = Field(None, description="DD-Ranking's use_aug_for_hard: false trains hard-label arms without augmentation; null/true: the arm's aug decides")
    zca: bool = Field(False, description="ZCA-whiten real pixels (train, rdm, test) with the fit on the whole train split (kornia ZCAWhitening, as DD-Ranking/MTT/DATM); no mean/std normalization first; a distilled set must be in ZCA space")
    zca_eps: float = Field(0.1, gt=0, description="ZCA: eps added to the covariance eigenvalues")
    test_resize: float | None = Field(None, gt=0, description="test split seen through Resize(round(s·r)) + CenterCrop(s) (RDED's val transform: r = (s//7·8)/s); null = as stored")
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

    def batch_for(self, arm: str) -> int:
        """The batch size of an arm: syn/rdm use syn_batch_size, full uses real_batch_size (else batch_size)."""
        chosen = self.real_batch_size if arm == "full" else self.syn_batch_size
        return chosen or self.batch_size

    def augments(self, labels: str, aug: bool) -> bool:
        """Whether an arm with these labels and aug flag trains augmented (aug_for_hard: false stops hard arms)."""
        return aug and self.augment.active and not (labels == "hard" and self.aug_for_hard is False)

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
