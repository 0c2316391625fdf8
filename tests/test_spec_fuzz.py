"""Property test: malformed specs always exit 2 with a field path (or the file's name), never a
traceback, and quickly: hostile YAML (duplicate keys, tags, alias bombs, deep nesting, bad bytes)
is refused at load, and numbers are numbers (no booleans, no inf/NaN, seeds in range)."""

from __future__ import annotations

import pytest
import copy
import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ddray.cli import app
from tests.conftest import TINY_SPEC, no_traceback, write_spec

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
        st.tuples(st.just("seeds"), st.just("seeds"), st.sampled_from([[0, 0], [], ["x"], [-1], [2**32], [10**23]])),
        st.tuples(st.just("set"), st.sampled_from(NUMBER_PATHS), st.sampled_from([True, False])),
        st.tuples(st.just("set"), st.sampled_from(FLOAT_PATHS), st.sampled_from([float("inf"), float("-inf"), float("nan")])),
        st.tuples(st.just("set"), st.sampled_from(["teachers.seed", "tuning.seed"]), st.sampled_from([-3, 2**32, 10**30])),
        st.tuples(st.just("set"), st.just("datasets.digits.root"), st.sampled_from(["/nonexistent", "."])),
        st.tuples(st.just("set"), st.sampled_from(["name", "methods"]), st.integers(101, 5000)),
        st.tuples(st.just("text"), st.sampled_from(sorted(TEXT_MUTATIONS)), st.integers(0, 4)),
    )


# Numbers anywhere in a spec (a trailing [] means "inside a list"); dm and tuning are added when used.
NUMBER_PATHS = ["ipc[]", "seeds[]", "overrides.epochs", "overrides.batch_size", "overrides.lr", "full.epochs",
                "full.seeds[]", "resources.default.cpu", "resources.default.gpu", "teachers.seed", "scores.gamma",
                "runtime.max_failures", "methods.dm.iterations", "methods.dm.lr_img", "overrides.augment.cutmix",
                "tuning.val_fraction"]
FLOAT_PATHS = ["overrides.lr", "overrides.lr[]", "overrides.temperature", "overrides.weight_decay", "full.lr",
               "resources.default.cpu", "methods.dm.lr_img", "methods.dm.momentum", "overrides.augment.cutmix",
               "methods.rded.crop_scale[]"]


def _with_bomb(text: str, n: int) -> str:
    """A 'billion laughs' (level i = nine aliases of level i-1) at the top, in plugin params or in overrides."""
    levels = ["l0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7 + n % 3)]
    where = n % 3
    if where == 0:
        return text + "x:\n" + "".join(f"  {line}\n" for line in levels)
    if where == 1:
        params = "".join(f"    {line}\n" for line in levels)
        return text.replace("  herding: {}\n", f"  p:\n    kind: tests.plugin_methods:boom\n{params}")
    return text.replace("overrides:\n", "overrides:\n" + "".join(f"  {line}\n" for line in levels))


# Whole-file mutations: (spec text, a small int to vary them) -> file bytes.
TEXT_MUTATIONS = {
    "duplicate top key": lambda t, n: (t + ["ipc: [2]", "seeds: [1]", "name: other", "archs: [convnet]", "protocol: classic"][n] + "\n").encode(),
    "duplicate nested key": lambda t, n: t.replace("  digits: {}\n", "  digits: {}\n  digits: {}\n").encode(),
    "tag": lambda t, n: t.replace("name: tiny", "name: " + ["!!binary aGk=", "!!set {a: null}", "!!python/name:os.system",
                                                             "!local x", "!!omap [a: 1]"][n]).encode(),
    "latin-1": lambda t, n: t.replace("name: tiny", "name: caf\u00e9").encode("latin-1"),
    "binary": lambda t, n: bytes(range(256)) * (n + 1),
    "deep nesting": lambda t, n: (t + "x: " + "[" * (65 + n * 1200) + "]" * (65 + n * 1200) + "\n").encode(),
    "alias bomb": lambda t, n: _with_bomb(t, n).encode(),
    "recursive alias": lambda t, n: (t + "x: &r [1, *r]\n").encode(),
}


def _set(spec: dict, path: str, value) -> None:
    """Put `value` at a dotted path (creating mappings), inside a one-item list when it ends in []."""
    *parents, last = path.split(".")
    if parents[:1] == ["methods"] and parents[1] not in spec["methods"]:
        spec["methods"][parents[1]] = {}
    if parents[:1] == ["tuning"] or last.startswith("tuning"):
        spec.setdefault("tuning", {"space": {"lr": [0.001]}})
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if last.endswith("[]"):
        last = last[:-2]
        value = [value] if last != "crop_scale" else [0.5, value]
    node[last] = value


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
    elif kind == "set" and where in ("name", "methods"):  # over-long names
        if where == "name":
            spec["name"] = "a" * value
        else:
            spec["methods"] = {"m" * value: {"kind": "random"}}
    elif kind == "set":
        _set(spec, where, value)
    elif kind == "names":
        if where == "archs":
            spec["archs"] = [value]
        elif where == "methods":
            spec["methods"] = {value: {}}
        else:
            spec["datasets"] = {value: {}}
    return spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=_mutations())
@pytest.mark.slow
def test_malformed_specs_exit_2_with_field_path(tmp_path, m):
    if m[0] == "text":
        p = write_spec(tmp_path / "spec.yaml", TINY_SPEC)
        p.write_bytes(TEXT_MUTATIONS[m[1]](p.read_text(), m[2]))
    else:
        spec = _apply(copy.deepcopy(TINY_SPEC), m)
        if spec is None:
            return
        p = write_spec(tmp_path / "spec.yaml", spec)
    t0 = time.monotonic()
    result = runner.invoke(app, ["validate", str(p)])
    assert time.monotonic() - t0 < 10, m
    assert result.exit_code == 2, (m, result.output)
    assert no_traceback(result), (m, result.exception)
    assert PATH_LINE.search(result.output), (m, result.output)
