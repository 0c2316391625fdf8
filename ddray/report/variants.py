"""Rows measured under different recipes are reported apart, never averaged into one cell.

A store can hold one cell's trials under several recipes: two protocol presets on purpose (a
hard- and a soft-label study sharing syntheses), or knobs that changed between runs (epochs 3 and
100, another teacher, another full-data recipe). Averaging such rows into one "random, IPC 1"
number is a wrong number. So every row gets a *variant*: the recipe it was measured under, read
from the row's own config (not from a spec file), and rows of different variants go to different
report tracks (`fixed` becomes `fixed:ddranking-soft`, `fixed:epochs=3`, ...). A store with one
recipe per cell keeps its tracks as they are, so its report does not change.

What a variant is, per (dataset, arch): the eval protocol without the knobs an arm sets itself
(labels, loss) and without augmentation (an un-augmented arm's protocol has none), plus the
augmentation of aug-on rows, the teacher of soft/hybrid rows, and the full-data recipe behind
HLR. An aug-off row fits every variant of its protocol whatever their augmentation, a hard-label
row every teacher; a row that fits several variants is reported in each.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pandas as pd

from ddray.keys import canonical_json
from ddray.trials import key_dump

_ARM_SET = ("labels", "loss", "augment")   # knobs the arm, not the recipe, decides (or that aug-off rows lack)


def _recipe(config: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(base protocol, augmentation, teacher) of an eval row's config, as canonical JSON texts.

    Seen as its key sees it (`trials.key_dump`): a teacher checkpoint's path is where it is, not
    which recipe; what the file was is the row's `inputs_json`, checked by `ddray run`.
    """
    config = key_dump(config)
    protocol = dict(config.get("protocol") or {})
    augment = protocol.get("augment") if config.get("aug") else None
    base = {k: v for k, v in protocol.items() if k not in _ARM_SET}
    teachers = config.get("teachers") if config.get("labels") not in (None, "hard") else None
    return (canonical_json(base), None if augment is None else canonical_json(augment),
            None if teachers is None else canonical_json(teachers))


def _full_recipe(config: dict[str, Any]) -> str:
    config = key_dump(config)
    return canonical_json({k: config.get(k) for k in ("protocol", "checkpoint")})


def _differences(recipes: list[dict[str, Any]]) -> list[str]:
    """A short, space-free label per recipe: the knobs whose values differ between them.

    Different presets are named by their preset; recipes that share a preset (a ZCA study beside
    the plain one) add what differs among them, so no two recipes ever get one label.
    """
    keys = sorted({k for r in recipes for k in r})
    varying = [k for k in keys if len({canonical_json(r.get(k)) for r in recipes}) > 1]
    if "name" in varying:  # different presets: the preset names say it
        labels = [str(r.get("name")) for r in recipes]
        for name in set(labels):
            same = [i for i, label in enumerate(labels) if label == name]
            if len(same) > 1:
                for i, more in zip(same, _differences([recipes[i] for i in same])):
                    labels[i] = f"{name},{more}"
        return labels
    labels = []
    for r in recipes:
        parts = [f"{k}={_short(r.get(k))}" for k in varying]
        labels.append(",".join(parts) or "same")
    return labels


def _short(v: Any) -> str:
    text = v if isinstance(v, str) else canonical_json(v)
    return text.replace(" ", "")[:40]


def split_track(track: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(base track, variant) of a track column: `fixed:epochs=3` -> (`fixed`, `epochs=3`); '' when none."""
    parts = track.astype(str).str.split(":", n=1)
    return parts.str[0], parts.str[1].fillna("")


def assign_variants(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`df` (eval and full rows with `config_json`) with `track` naming each row's variant.

    Returns the frame (a row fitting several variants appears once per variant) and a warning per
    (dataset, arch) that holds more than one variant.
    """
    if df.empty or _one_recipe_each(df):
        return df, []
    frames, warnings = [], []
    for (dataset, arch), part in df.groupby(["dataset", "arch"], dropna=False, sort=True):
        configs = [json.loads(c) if isinstance(c, str) and c else {} for c in part["config_json"]]
        tagged, labels = _split_group(part, configs)
        frames.append(tagged)
        if len(labels) > 1:
            warnings.append(f"{dataset}/{arch}: rows of {len(labels)} recipes, reported apart as tracks "
                            + ", ".join(sorted(labels)) + " (never averaged together)")
    return pd.concat(frames, ignore_index=True), warnings


def _one_recipe_each(df: pd.DataFrame) -> bool:
    """The common case, decided without parsing configs: one protocol and teacher per arm setting.

    Within one study, every row of a (dataset, arch, stage, track, labels, aug) has the same
    resolved protocol and teacher, whatever its method, IPC or seed.
    """
    rows = df[df["stage"].isin(["eval", "full"])]
    keys = ["dataset", "arch", "stage", "track", "labels", "aug"]
    counts = rows.groupby(keys, dropna=False)[["protocol_json", "teacher"]].nunique(dropna=False)
    return bool(counts.empty or counts.to_numpy().max() <= 1)


def _split_group(part: pd.DataFrame, configs: list[dict[str, Any]]) -> tuple[pd.DataFrame, set[str]]:
    """Rows of one (dataset, arch), each tagged with every variant it fits."""
    is_eval = (part["stage"] == "eval").to_numpy()
    recipes = [_recipe(c) if e else None for c, e in zip(configs, is_eval)]
    fulls = [_full_recipe(c) if not e and st == "full" else None
             for c, e, st in zip(configs, is_eval, part["stage"])]
    full_set = sorted({f for f in fulls if f is not None}) or [None]
    variants: list[tuple[str, str | None, str | None, str | None]] = []
    for base in sorted({r[0] for r in recipes if r is not None}):
        augs = sorted({r[1] for r in recipes if r and r[0] == base and r[1] is not None}) or [None]
        teachers = sorted({r[2] for r in recipes if r and r[0] == base and r[2] is not None}) or [None]
        variants += [(base, a, t, f) for a, t, f in itertools.product(augs, teachers, full_set)]
    if len(variants) <= 1:
        return part, {"-"}
    names = _differences([_describe(v) for v in variants])
    rows = []
    for name, (base, aug, teacher, full) in zip(names, variants):
        fits = [(r is not None and r[0] == base and (r[1] is None or r[1] == aug) and (r[2] is None or r[2] == teacher))
                or (r is None and (f is None or f == full)) for r, f in zip(recipes, fulls)]
        tagged = part[fits].copy()
        tagged["track"] = tagged["track"].astype(str) + ":" + name
        rows.append(tagged)
    return pd.concat(rows), set(names)


def _describe(variant: tuple[str, str | None, str | None, str | None]) -> dict[str, Any]:
    base, aug, teacher, full = variant
    out = json.loads(base)
    if aug is not None:
        out["augment"] = json.loads(aug)
    if teacher is not None:
        out["teacher"] = json.loads(teacher)
    if full is not None:
        out["full"] = json.loads(full)
    return out
