"""The search space of the tuned track: which knobs may be searched, and the configs a budget buys.

Pure and seeded: the same `tuning` section always expands to the same ordered list of knob
dicts, on any machine. That list is what makes the search fair: every arm of every comparison
cell (syn and rdm, each label setting) is searched over exactly these configs, so no arm gets a
larger budget or a luckier draw than the arm it is compared with.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from typing import Any

from ddray.keys import canonical_json
from ddray.protocols import Augment, Protocol

# Protocol knobs a search may change. Not searchable: what defines the arm (labels, loss), the
# checkpoint rule (selecting on test evaluations is the leak tuning exists to avoid), the
# validation split itself, and execution knobs.
TUNABLE = ("lr", "weight_decay", "batch_size", "temperature", "epochs", "momentum", "optimizer", "schedule",
           "zeta", "step_at", "step_gamma", "ema", "kl_t2", "mse_gamma")
# Augmentation strength: `augment.<knob>` (e.g. augment.cutmix, augment.rrc_scale).
AUG_TUNABLE = ("cutmix", "mixup", "rrc_scale", "patch_shuffle", "dsa", "flip", "rrc")
AUG_PREFIX = "augment."


def knob_names() -> list[str]:
    return [*TUNABLE, *(AUG_PREFIX + k for k in AUG_TUNABLE)]


def _assert_known() -> None:
    # The lists above must name real fields: a renamed Protocol knob fails at import, not mid-search.
    missing = [k for k in TUNABLE if k not in Protocol.model_fields] + [k for k in AUG_TUNABLE if k not in Augment.model_fields]
    if missing:
        raise RuntimeError(f"tunable knobs that are not protocol fields: {missing}")


_assert_known()


def _round(v: float) -> float:
    """4 significant digits: readable knobs in labels and rows, identical text in every process."""
    return float(f"{v:.4g}")


def _draw(rng: random.Random, dim: Any) -> Any:
    """One value of one knob: a choice from a list, or from a range {low, high, log, integer}."""
    if isinstance(dim, list):
        return dim[rng.randrange(len(dim))]
    low, high = float(dim["low"]), float(dim["high"])
    u = rng.random()
    v = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if dim.get("log") else low + u * (high - low)
    return int(round(v)) if dim.get("integer") else _round(v)


def _distinct(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for c in configs:
        text = canonical_json(c)
        if text not in seen:
            seen.add(text)
            out.append(c)
    return out


def grid_configs(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cartesian product of the knobs' value lists, knobs in sorted order (first knob slowest)."""
    names = sorted(space)
    return _distinct([dict(zip(names, values)) for values in itertools.product(*(space[n] for n in names))])


def random_configs(space: Mapping[str, Any], budget: int, seed: int) -> list[dict[str, Any]]:
    """`budget` seeded draws (duplicates merged: a draw repeated is not searched twice)."""
    rng = random.Random(f"ddray-tuning-{seed}")
    names = sorted(space)
    return _distinct([{n: _draw(rng, space[n]) for n in names} for _ in range(budget)])


def grid_size(space: Mapping[str, Any]) -> int:
    return math.prod(len(v) for v in space.values() if isinstance(v, list))


def search_configs(space: Mapping[str, Any], algorithm: str, budget: int | None, seed: int) -> list[dict[str, Any]]:
    """The knob dicts one cell searches, in a fixed order (the same for every arm)."""
    if algorithm == "grid":
        return grid_configs(space)
    if algorithm == "random":
        if budget is None:
            raise ValueError("random search needs a budget")
        return random_configs(space, budget, seed)
    raise ValueError(f"unknown search algorithm '{algorithm}'")


def effective_knobs(knobs: Mapping[str, Any], aug: bool) -> dict[str, Any]:
    """The knobs that can change an arm's numbers: augmentation knobs do nothing without augmentation.

    Why: an aug-off cell then searches each distinct config once, and its search trials' keys do
    not depend on knobs it ignores.
    """
    return {k: v for k, v in knobs.items() if aug or not k.startswith(AUG_PREFIX)}


def apply_knobs(protocol: Mapping[str, Any], knobs: Mapping[str, Any], aug: bool) -> dict[str, Any]:
    """`knobbed` as the dict a config of this arm dumps (no `augment` for an un-augmented arm)."""
    out = knobbed(protocol, knobs, aug).model_dump(mode="json")
    if not aug:
        out.pop("augment")  # as an eval config's dump: augmentation knobs cannot change an un-augmented arm
    return out


def knobbed(protocol: Mapping[str, Any], knobs: Mapping[str, Any], aug: bool) -> Protocol:
    """An arm's protocol (as its config dumps it) with `knobs` on top, validated.

    Raises pydantic's ValidationError when the knobs make a bad protocol (e.g. lr < 0).
    """
    p = dict(protocol)
    augment = dict(p.get("augment") or {})
    for k, v in effective_knobs(knobs, aug).items():
        if k.startswith(AUG_PREFIX):
            augment[k[len(AUG_PREFIX):]] = v
        else:
            p[k] = tuple(v) if isinstance(v, list) else v
    if aug:
        p["augment"] = augment
    return Protocol.model_validate(p)


def space_problems(space: Mapping[str, Any], max_epochs: int | None) -> list[str]:
    """Problems of a space that need no protocol: unknown knobs, empty lists, epochs over the cap."""
    from ddray.errors import did_you_mean

    problems = []
    known = knob_names()
    for name, dim in space.items():
        if name not in known:
            problems.append(f"unknown knob '{name}'{did_you_mean(name, known)}; searchable: {', '.join(known)}")
            continue
        if isinstance(dim, list) and not dim:
            problems.append(f"{name}: an empty list of values")
        if name == "epochs" and max_epochs is not None:
            top = max(dim) if isinstance(dim, list) and dim else (dim.get("high") if isinstance(dim, dict) else None)
            if top is not None and top > max_epochs:
                problems.append(f"epochs: {top} is over the cap max_epochs={max_epochs}")
    return problems
