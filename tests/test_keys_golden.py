"""Trial keys are a contract: every shipped spec plans to exactly the keys committed in
`specs/golden-keys.json`, so a refactor that changes a key (and orphans every stored row of it)
fails here, not in a user's store. Regenerate the file only with a number-changing knob change.
"""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import REPO
from ddray.plan import make_plan
from ddray.spec import parse_spec, smoke
from ddray.spec_check import resolve_methods

GOLDEN = json.loads((REPO / "specs" / "golden-keys.json").read_text())


def _plan_rows(name: str) -> list[list[str]]:
    file, _, variant = name.partition("--")
    spec = parse_spec(yaml.safe_load((REPO / "specs" / file).read_text()))
    if variant == "smoke":
        spec = smoke(spec)
    return sorted([t.key, t.stage, t.label] for t in make_plan(resolve_methods(spec)).trials)


def test_every_shipped_spec_has_golden_keys():
    shipped = {p.name for p in (REPO / "specs").glob("*.yaml")}
    assert shipped == {n.partition("--")[0] for n in GOLDEN}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_plan_keys_match_the_golden_list(name):
    assert _plan_rows(name) == GOLDEN[name]


def test_committed_fashion_mnist_rows_are_planned_keys():
    """Every stored row of the committed Fashion-MNIST store is a key one of its two specs (the
    hard-label study and the soft-label study sharing its store) still plans; the soft study is
    complete, so a rerun of it trains nothing."""
    rows = {p.stem for p in (REPO / "docs" / "results" / "fashion-mnist" / "rows").glob("*/*.parquet")}
    hard, soft = ({k for k, _, _ in GOLDEN[name]} for name in ("fashion-mnist.yaml", "fashion-mnist-soft.yaml"))
    assert rows and rows <= hard | soft
    assert soft <= rows
