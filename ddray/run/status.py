"""What a store holds against what its spec plans: done, errored and pending per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ddray.errors import InputError
from ddray.plan import STAGES, make_plan
from ddray.spec import parse_spec
from ddray.store import Store


@dataclass
class StoreStatus:
    name: str | None
    counts: dict[str, dict[str, int]]
    errors: list[dict[str, Any]] = field(default_factory=list)


def store_status(uri: str) -> StoreStatus:
    store = Store(uri)
    text = store.stored_spec()
    if text is None:
        raise InputError(f"no ddray store at '{uri}' (no spec.yaml): run `ddray run SPEC --store {uri}` first", path="store")
    spec = parse_spec(yaml.safe_load(text))
    plan = make_plan(spec)
    done = store.done_keys()
    errors = store.errors_of()
    counts = {}
    for stage in STAGES:
        keys = {t.key for t in plan.stage(stage)} | done[stage]
        d = len(done[stage])
        e = len([k for k in keys if k in errors and k not in done[stage]])
        counts[stage] = {"done": d, "errored": e, "pending": len(keys) - d - e}
    failed = [errors[k] for k in sorted(errors) if not any(k in done[s] for s in STAGES)]
    return StoreStatus(spec.name, counts, failed)
