"""A stored benchmark, read one way: its store, the spec it was run with, and that spec's plan.

`ddray status`, `ddray report` and `ddray run`'s same-benchmark check all start from a store URI;
they share this reader instead of each parsing `spec.yaml` on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import yaml

from ddray.errors import InputError
from ddray.plan import Plan, make_plan
from ddray.spec import Spec, parse_spec
from ddray.spec_check import resolve_methods
from ddray.store import Store


def stored_spec(store: Store) -> Spec:
    """The spec a store was run with, resolved for planning; InputError when absent or unreadable."""
    text = store.stored_spec()
    if text is None:
        raise InputError(f"no ddray store at '{store.uri}' (no spec.yaml): run `ddray run SPEC --store {store.uri}` first",
                         path="store")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"{store.uri}/spec.yaml is not valid YAML: {e}", path="store") from None
    if not isinstance(data, dict):
        raise InputError(f"{store.uri}/spec.yaml is not a spec (a YAML mapping)", path="store")
    return resolve_methods(parse_spec(data))


@dataclass(frozen=True)
class Benchmark:
    """A store and the spec it holds; the plan is made on first use."""

    store: Store
    spec: Spec

    @cached_property
    def plan(self) -> Plan:
        return make_plan(self.spec)


def open_benchmark(uri: str) -> Benchmark:
    store = Store(uri)
    return Benchmark(store, stored_spec(store))
