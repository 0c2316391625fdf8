"""A stored benchmark, read one way: its store, the specs run into it, and what they plan.

`ddray status`, `ddray report` and `ddray run`'s same-benchmark check all start from a store URI;
they share this reader instead of each parsing `spec.yaml` on its own. A store may hold several
studies (e.g. a hard-label and a soft-label protocol over the same syntheses and teacher, which
it then stores once): its plan is the union of the plans of every spec run into it
(`specs/<hash>.yaml`), and `spec.yaml` is the latest one (its name and score weights are shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import ValidationError

import ddray
from ddray.errors import InputError
from ddray.plan import Plan, make_plan, merge_plans
from ddray.spec import Spec, parse_spec
from ddray.spec_check import resolve_methods
from ddray.store import Store
from ddray.store.rows import json_key
from ddray.trials import Trial, identity, parse_config
from ddray.yaml_strict import parse_yaml


def _spec_of(text: str, where: str) -> Spec:
    data = parse_yaml(text, where)
    if not isinstance(data, dict):
        raise InputError(f"{where} is not a spec (a YAML mapping)", path="store")
    return resolve_methods(parse_spec(data))


def stored_spec(store: Store) -> Spec:
    """The latest spec run into a store, resolved for planning; InputError when absent or unreadable."""
    text = store.stored_spec()
    if text is None:
        raise InputError(f"no ddray store at '{store.uri}' (no spec.yaml): run `ddray run SPEC --store {store.uri}` first",
                         path="store")
    return _spec_of(text, f"{store.uri}/spec.yaml")


@dataclass(frozen=True)
class Benchmark:
    """A store and the spec it holds (None when its spec.yaml is gone); the plan is made on first use.

    Rows say what they are (store/rows.py), so a store whose spec.yaml was deleted can still be
    reported and counted; only what is *pending* needs the spec.
    """

    store: Store
    spec: Spec | None
    specs: tuple[Spec, ...] = ()

    @cached_property
    def plan(self) -> Plan | None:
        """The union of the plans of every spec run into the store (shared trials once)."""
        if self.spec is None:
            return None
        return merge_plans([make_plan(s) for s in self.specs or (self.spec,)])

    @property
    def name(self) -> str | None:
        names = list(dict.fromkeys(s.name for s in self.specs or ((self.spec,) if self.spec else ())))
        return " + ".join(names) or None


def conflicts(trials: Iterable[Trial], config_jsons: Iterable[str], limit: int = 5) -> list[str]:
    """Planned trials that a stored row already measures under another key (another recipe).

    Why from the rows and not from spec.yaml: a user can delete that file; the rows say what they
    are. Growing a benchmark (methods, seeds, IPCs, archs) adds identities, so it never conflicts.
    """
    stored: dict[tuple[Any, ...], str] = {}
    for text in config_jsons:
        config = _stored_config(text)
        stored.setdefault(identity(config), config.key)
    out = []
    for t in trials:
        other = stored.get(identity(t.config))
        if other is not None and other != t.key:
            out.append(f"{t.label}: stored as {other}, planned as {t.key}")
            if len(out) >= limit:
                break
    return out


def _stored_config(text: str):  # -> TrialConfig
    """A stored row's config; InputError naming the row when this ddray cannot read it (another version's)."""
    try:
        return parse_config(json.loads(text))
    except (ValidationError, ValueError) as e:
        errors = e.errors() if isinstance(e, ValidationError) else [{"loc": (), "msg": str(e)}]
        first = errors[0] if errors else {"loc": (), "msg": str(e)}
        where = ".".join(str(p) for p in first.get("loc", ())) or "config"
        raise InputError(
            f"the stored row {json_key(text) or '?'} has a config this ddray ({ddray.__version__}) cannot read "
            f"({where}: {first.get('msg')}); it was written by another ddray version: run this spec with that "
            "version (the row's ddray_version column), or into a new store", path="store") from None


def open_benchmark(uri: str, require_spec: bool = True) -> Benchmark:
    """The benchmark in store `uri`; without `require_spec`, a store without spec.yaml opens too."""
    store = Store(uri)
    if not require_spec and store.stored_spec() is None:
        return Benchmark(store, None)
    specs = tuple(_spec_of(t, f"a spec in {uri}/specs/") for t in store.stored_spec_texts())
    return Benchmark(store, stored_spec(store), specs)
