"""DD-Ranking's `custom_train_trans` / `custom_val_trans` lists mapped to ddray's augmentation knobs.

A DD-Ranking transform list is torchvision transforms by name (`{name: RandomResizedCrop, args:
{...}}`), applied per image by its loader. ddray augments whole batches on the device, so each
transform becomes a knob of the protocol's `augment` (or, for the test split, `test_resize`);
`ToTensor` and `Normalize` need none (ddray normalizes with the dataset's statistics). A transform
without a knob is an error naming its position in the list.
"""

from __future__ import annotations

from typing import Any

from ddray.importers.ddranking_types import DATASETS, Imported


# The arguments each mapped transform may carry; any other one is an error, never dropped.
ARGS = {"RandomResizedCrop": {"size", "scale", "antialias"}, "RandomCrop": {"size", "padding"},
        "RandomHorizontalFlip": {"p"}, "GaussianNoise": {"mean", "sigma", "clip"}, "ShufflePatches": {"factor"},
        "ToTensor": set(), "Normalize": {"mean", "std"}, "Resize": {"size", "antialias"}, "CenterCrop": {"size"}}


def _args(t: dict[str, Any]) -> dict[str, Any]:
    args = t.get("args") or {}
    return dict(args) if isinstance(args, dict) else {}


def _unmapped_args(imp: Imported, where: str, t: dict[str, Any]) -> bool:
    """True (and an error note) when a known transform carries an argument ddray has no knob for."""
    extra = sorted(set(_args(t)) - ARGS.get(str(t.get("name")), set(_args(t))))
    if extra:
        imp.note(where, "error", f"{t.get('name')} with {extra}: no ddray knob for {', '.join(extra)}")
    return bool(extra)


def train_transforms(imp: Imported, items: list[dict[str, Any]] | None) -> None:
    """`custom_train_trans` into `imp.knobs['augment']`, one note per transform."""
    if not items:
        imp.note("custom_train_trans", "mapped", "null -> DD-Ranking's default (no per-image transform)")
        return
    size = DATASETS[imp.dataset][1]
    aug: dict[str, Any] = imp.knobs.setdefault("augment", {})
    for i, t in enumerate(items):
        where, name, a = f"custom_train_trans[{i}]", t.get("name"), _args(t)
        if _unmapped_args(imp, where, t):
            continue
        if name == "RandomResizedCrop" and a.get("size", size) in (size, [size, size]):
            scale = tuple(float(x) for x in a.get("scale", (0.08, 1.0)))
            if scale == (1.0, 1.0):  # RDED's RandomResizedCrop(scale=(1, 1)): the whole image, resized to itself
                imp.note(where, "mapped", "RandomResizedCrop scale (1, 1): the identity, no knob")
                continue
            aug.update(rrc=True, rrc_scale=scale)
            imp.note(where, "mapped", f"RandomResizedCrop({size}, scale {list(scale)}) -> augment.rrc, rrc_scale")
        elif name == "RandomCrop" and a.get("size", size) in (size, [size, size]):
            aug["random_crop_padding"] = int(a.get("padding", 0))
            imp.note(where, "mapped", f"RandomCrop({size}, padding {aug['random_crop_padding']}) -> augment.random_crop_padding")
        elif name == "RandomHorizontalFlip" and float(a.get("p", 0.5)) == 0.5:
            aug["flip"] = True
            imp.note(where, "mapped", "RandomHorizontalFlip(0.5) -> augment.flip")
        elif name == "GaussianNoise" and float(a.get("mean", 0.0)) == 0.0 and not a.get("clip", False):
            aug["gaussian_noise"] = float(a.get("sigma", 0.1))
            imp.note(where, "mapped", f"GaussianNoise(σ {aug['gaussian_noise']:g}) -> augment.gaussian_noise")
        elif name == "ShufflePatches":
            factor = int(a.get("factor", 1))
            if factor > 1:  # DD-Ranking's shuffles the column strips, then the row strips
                aug.update(patch_shuffle=factor, patch_shuffle_strips=True)
            imp.note(where, "mapped", f"ShufflePatches({factor}) -> " + (
                f"augment.patch_shuffle {factor}, patch_shuffle_strips" if factor > 1 else "the identity, no knob"))
        elif name == "ToTensor":
            imp.note(where, "mapped", "ToTensor: ddray keeps uint8 pixels until the device")
        elif name == "Normalize":
            imp.note(where, "differs", f"Normalize(mean {a.get('mean')}): ddray normalizes with {imp.loader}'s own statistics")
        else:
            imp.note(where, "error", f"{name}({a}): no ddray augmentation knob")


def val_transforms(imp: Imported, items: list[dict[str, Any]] | None) -> None:
    """`custom_val_trans`: Resize(r) + CenterCrop(s) is `test_resize` r/s (1: the test images as they are)."""
    if not items:
        imp.note("custom_val_trans", "mapped", "null -> the test split as the loader gives it")
        return
    size = DATASETS[imp.dataset][1]
    names = [t.get("name") for t in items]
    if any([_unmapped_args(imp, f"custom_val_trans[{i}]", t) for i, t in enumerate(items)]):
        return
    core = [t for t in items if t.get("name") not in ("ToTensor", "Normalize")]
    if [t.get("name") for t in core] != ["Resize", "CenterCrop"] or _args(core[1]).get("size") != size:
        imp.note("custom_val_trans", "error", f"{names}: ddray maps Resize(r) + CenterCrop({size}) only")
        return
    resize = int(_args(core[0]).get("size", size))
    if imp.dataset == "ImageNet1K" and resize == 256:
        imp.note("custom_val_trans", "mapped", "Resize(256) + CenterCrop(224): the imagenet1k loader's own test geometry")
    elif resize == size:
        imp.note("custom_val_trans", "mapped", f"Resize({size}) + CenterCrop({size}): the identity on {size} px images")
    else:
        imp.knobs["test_resize"] = resize / size
        imp.note("custom_val_trans", "mapped", f"Resize({resize}) + CenterCrop({size}) -> test_resize {resize / size:g}")
