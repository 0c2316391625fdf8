"""The package's shape, checked from its source: arrows point one way (spec -> plan -> run ->
store -> report), nothing imports in a cycle, and modules stay small enough to read.

The graph is read from the `ast` of every module, function-level imports included: a lazy
import is still a dependency, only a deferred one.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "ddray"
MAX_MODULE_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """ddray modules imported by `path`: `from a.b import c` counts a.b.c when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in modules else base)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(path, name, set(mods)) for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _reaches(graph: dict[str, set[str]], start: str, prefix: str) -> list[str] | None:
    """A path from `start` to a module under `prefix`, or None."""
    seen, todo = {start}, [[start]]
    while todo:
        path = todo.pop()
        for m in sorted(graph[path[-1]]):
            if m == prefix or m.startswith(prefix + "."):
                return [*path, m]
            if m not in seen:
                seen.add(m)
                todo.append([*path, m])
    return None


def test_no_import_cycle_among_ddray_modules():
    assert _cycle(import_graph()) is None, " -> ".join(_cycle(import_graph()) or [])


def test_spec_plan_and_report_never_import_the_runner():
    graph = import_graph()
    upstream = [m for m in graph if m in ("ddray.plan", "ddray.trials", "ddray.keys", "ddray.protocols")
                or m.startswith("ddray.spec") or m.startswith("ddray.report")]
    assert upstream
    bad = {m: path for m in upstream if (path := _reaches(graph, m, "ddray.run"))}
    assert not bad, bad


def test_modules_stay_under_500_lines():
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


MAX_FUNCTION_LINES = 60


def test_functions_stay_under_60_lines():
    """Every function of the package, not only the code each trial runs: a long one is read by the
    next person who changes it."""
    long = {f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
            for path in PACKAGE.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    assert not long, long
