"""Property test: malformed specs always exit 2 with a field path, never a traceback."""

from __future__ import annotations

import copy
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ddray.cli import app
from tests.conftest import TINY_SPEC, write_spec

runner = CliRunner()
PATH_LINE = re.compile(r"^error ([A-Za-z0-9_.\-/ ]+?): \S", re.M)


def _mutations():
    junk = st.sampled_from(["x", 3.5, -1, [], {}, None, "1e9", True])
    top_keys = st.sampled_from(sorted(TINY_SPEC))
    return st.one_of(
        st.tuples(st.just("unknown_key"), st.sampled_from(["", "datasets.digits", "overrides", "full", "scores"]), st.text("abcdefgxyz_", min_size=3, max_size=8)),
        st.tuples(st.just("drop"), st.sampled_from(["name", "datasets", "methods", "ipc", "archs"]), st.none()),
        st.tuples(st.just("retype"), top_keys.filter(lambda k: k not in ("teachers", "resources", "full")), junk),
        st.tuples(st.just("ipc"), st.just("ipc"), st.sampled_from([[0], [-3], [1, 1], [100000], ["a"]])),
        st.tuples(st.just("gpu"), st.just("resources"), st.sampled_from([1.5, -1, 2.25, "lots"])),
        st.tuples(st.just("names"), st.sampled_from(["archs", "methods", "datasets"]), st.sampled_from(["resnett", "dmm", "cifar11"])),
        st.tuples(st.just("seeds"), st.just("seeds"), st.sampled_from([[0, 0], [], ["x"]])),
    )


def _apply(spec: dict, m) -> dict | None:
    kind, where, value = m
    if kind == "unknown_key":
        node = spec
        for part in [p for p in where.split(".") if p]:
            node = node.setdefault(part, {})
        if value in node or value in ("lambda", "gamma", "compat", "seeds", "overrides", "loader", "root", "options"):
            return None
        node[value] = 1
    elif kind == "drop":
        spec.pop(where)
    elif kind == "retype":
        if value in (None, {}, []) and where in ("seeds", "protocol", "overrides", "arms", "scores", "store", "tuning"):
            return None  # these have valid defaults or empty forms
        if isinstance(value, str) and where in ("name", "store"):
            return None  # any such string is a valid name or store
        spec[where] = value
    elif kind in ("ipc", "seeds"):
        spec[where] = value
    elif kind == "gpu":
        spec["resources"] = {"default": {"gpu": value}}
    elif kind == "names":
        if where == "archs":
            spec["archs"] = [value]
        elif where == "methods":
            spec["methods"] = {value: {}}
        else:
            spec["datasets"] = {value: {}}
    return spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=_mutations())
def test_malformed_specs_exit_2_with_field_path(tmp_path, m):
    spec = _apply(copy.deepcopy(TINY_SPEC), m)
    if spec is None:
        return
    p = write_spec(tmp_path / "spec.yaml", spec)
    result = runner.invoke(app, ["validate", str(p)])
    assert result.exit_code == 2, (m, result.output)
    assert "Traceback" not in result.output
    assert PATH_LINE.search(result.output), (m, result.output)
