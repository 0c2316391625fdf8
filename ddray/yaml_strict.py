"""Strict YAML for the files users write (specs, cluster files): plain data, bounded cost.

PyYAML's SafeLoader accepts everything YAML allows, and in a config file some of it is a trap:
- a repeated key silently keeps its last value (a second `ipc:` wins over the first);
- explicit tags build values no field expects (`!!binary` bytes, `!!set` a set read as a list);
- an alias shares one node, so loading nine aliases of nine aliases ... is instant, but every
  later walk of the data (validation, hashing a trial key, dumping it) walks the expansion:
  nine levels are 9⁹ values and `ddray plan` never ends ("billion laughs");
- nesting recurses in the composer: 5,000 `[` overflow Python's stack (RecursionError);
- the pure-Python parser reads about 100 KB a second on a busy core, so size bounds time.

`StrictLoader` rejects each at load time, with the line, as a `yaml.MarkedYAMLError`, so callers
keep their one `except yaml.YAMLError`. `read_yaml_file` adds the file checks (size, UTF-8) and
turns every problem into an InputError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

from ddray.errors import InputError

MAX_DEPTH = 64            # nesting levels; a spec uses about 5
MAX_NODES = 100_000       # values after expanding aliases; a large spec holds a few hundred
MAX_BYTES = 256 * 1024    # a spec is a few KB; this much parses in about 3 s


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without duplicate keys, explicit tags, deep nesting or alias bombs."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its value count with aliases expanded

    def compose_document(self) -> Node:
        self._sizes = {}  # anchors do not cross documents
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        alias = isinstance(event, AliasEvent)
        if not alias and getattr(event, "tag", None) is not None:
            tag = event.tag.replace("tag:yaml.org,2002:", "!!")
            raise ComposerError(None, None, f"the tag {tag} is not allowed: write plain strings, numbers, "
                                "booleans, lists and mappings", event.start_mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = self._sizes.get(id(node))
        if size is None:
            if alias:  # the anchor is still being composed: the alias is inside its own anchor
                raise ComposerError(None, None, "an alias refers to its own enclosing anchor (a cycle)", event.start_mark)
            size = 1 + sum(self._sizes[id(child)] for child in _children(node))
            self._sizes[id(node)] = size
        if size > MAX_NODES:
            raise ComposerError(None, None, f"expands to more than {MAX_NODES:,} values through aliases (&anchor/*alias); "
                                "write the values out, or share less", node.start_mark)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` entries may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first.setdefault(key, key_node)
            except TypeError:  # unhashable key: SafeLoader's own error says so
                continue
            if seen is not key_node:
                raise ConstructorError(None, None, f"duplicate key '{key}' (lines {seen.start_mark.line + 1} and "
                                       f"{key_node.start_mark.line + 1}): keep one", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load(text: str) -> Any:
    """One YAML document as plain Python data; raises yaml.YAMLError (with a mark) on anything else."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 — StrictLoader is a SafeLoader


def load_all(text: str) -> list[Any]:
    """Every document of a multi-document file (Kubernetes manifests), strictly."""
    return list(yaml.load_all(text, Loader=StrictLoader))  # noqa: S506


def yaml_problem(e: yaml.YAMLError) -> str:
    """'not valid YAML (line L, column C): problem' for an InputError line."""
    mark = getattr(e, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"not valid YAML{where}: {problem}"


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """A user's YAML file as text: readable, at most `max_bytes`, UTF-8; else an InputError naming it."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise InputError(f"is {size:,} bytes; a YAML file read here may hold at most {max_bytes:,}", path=str(p))
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise InputError(f"is not UTF-8 text: byte 0x{e.object[e.start]:02x} on line {line} cannot be decoded "
                         "(save the file as UTF-8)", path=str(p)) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path=str(p)) from None


def parse_yaml(text: str, source: str) -> Any:
    """`load(text)`, with a problem as an InputError naming `source` (a file, a store's spec.yaml)."""
    try:
        return load(text)
    except yaml.YAMLError as e:
        raise InputError(yaml_problem(e), path=source) from None


def read_yaml_file(path: str | Path, max_bytes: int = MAX_BYTES) -> tuple[str, Any]:
    """(text, data) of one YAML file, read strictly; every problem is an InputError naming the file."""
    text = read_text(path, max_bytes)
    return text, parse_yaml(text, str(path))
