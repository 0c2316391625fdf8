"""One registry mechanism for everything a user can name in a spec: methods, datasets, models.

Modeled on lm-evaluation-harness's `Registry`: built-ins register by decorator; a lookup that finds
nothing says what exists and what was probably meant; installed packages extend a registry through
an entry-point group (`ddray.methods`, `ddray.datasets`, `ddray.models`) that is read only when a
name is not built in, so importing ddray never imports a plugin.

A plugin is the user's input, not ddray's code: one that fails to import or does not honour its
registry's contract is reported as an `InputError` naming the entry point, and a listing skips it
(reporting it in `problems()`) instead of letting one broken package hide the others.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ddray.errors import InputError, unknown

T = TypeVar("T")

# adapt(name, loaded object, origin) -> the registry's entry, or InputError naming `origin`.
Adapter = Callable[[str, object, str], T]


class Registry(Generic[T]):
    """Named entries of one kind: built-ins, installed entry points, and (optionally) import paths.

    `kind` names the entries in messages ("method", "dataset loader"); `group` is the entry-point
    group plugins declare; `adapt` turns what a plugin points at into an entry, checking the
    registry's contract. With `import_paths`, a name `pkg.module:attr` is imported directly, so a
    user can try a plugin without packaging it.
    """

    def __init__(self, kind: str, group: str, adapt: Adapter[T], *, import_paths: bool = False):
        self.kind = kind
        self.group = group
        self._adapt = adapt
        self._import_paths = import_paths
        self._builtins: dict[str, T] = {}
        self._loaded: dict[tuple[str, str], T | InputError] = {}  # (name, target) -> entry or failure
        self._eps: dict[str, importlib.metadata.EntryPoint] = {}
        self._eps_path: tuple[str, ...] | None = None
        self._lock = threading.RLock()

    # --- registration -------------------------------------------------------------------------
    def register(self, name: str, entry: T | None = None) -> Callable[[T], T]:
        """Add a built-in: `@registry.register(name)` on the entry, or `registry.register(name, entry)`.

        Registering the same object twice is a no-op (a module imported again); a different object
        under a taken name is a programming error (ValueError), never a silent replacement.
        """

        def add(obj: T) -> T:
            with self._lock:
                current = self._builtins.get(name)
                if current is not None and current is not obj:
                    raise ValueError(f"{self.kind} '{name}' is already registered")
                self._builtins[name] = obj
            return obj

        if entry is not None:
            add(entry)
        return add

    # --- lookup -------------------------------------------------------------------------------
    def get(self, name: str, path: str | None = None) -> T:
        """The entry called `name`, or InputError (at spec field `path`) listing the known names."""
        try:
            found = self.find(name)
        except InputError as e:  # a broken plugin: say which spec field named it
            if path is None:
                raise
            raise InputError(str(e), path=path) from e
        if found is None:
            raise InputError(unknown(self.kind, name, self.names()), path=path)
        return found

    def find(self, name: str) -> T | None:
        """A built-in, else a plugin (`plugin`); None when nothing has that name."""
        if name in self._builtins:
            return self._builtins[name]
        return self.plugin(name)

    def plugin(self, name: str) -> T | None:
        """An import path (`pkg.module:attr`, when enabled) or an installed entry point, else None.

        Raises InputError when the plugin exists but cannot be loaded or breaks the contract.
        """
        if self._import_paths and ":" in name:
            return self._load(name, name, lambda: import_object(name), f"plugin {name}")
        ep = self.entry_points().get(name)
        if ep is None:
            return None
        return self._load(name, ep.value, lambda: _load_entry_point(ep), f"entry point '{name}' ({ep.value})")

    def _load(self, name: str, target: str, load: Callable[[], object], origin: str) -> T:
        key = (name, target)
        with self._lock:
            cached = self._loaded.get(key)
            if cached is None:
                try:
                    cached = self._adapt(name, load(), origin)
                except InputError as e:
                    cached = e
                self._loaded[key] = cached
        if isinstance(cached, InputError):
            raise cached
        return cached

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Installed entry points of the group, re-read whenever `sys.path` changes."""
        path = tuple(sys.path)
        with self._lock:
            if path != self._eps_path:
                self._eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}
                self._eps_path = path
            return self._eps

    # --- listing ------------------------------------------------------------------------------
    def builtins(self) -> dict[str, T]:
        """Built-in entries by name (registration order)."""
        return dict(self._builtins)

    def names(self) -> list[str]:
        """Every name `get` resolves without an import path: built-ins and installed plugins."""
        return sorted(set(self._builtins) | set(self.entry_points()))

    def items(self) -> list[tuple[str, T]]:
        """Built-ins sorted by name, then the installed plugins that load (sorted by name)."""
        return sorted(self._builtins.items()) + self.plugins()

    def plugins(self) -> list[tuple[str, T]]:
        """Installed plugins that load, sorted by name; a built-in's name shadows a plugin's."""
        out = []
        for name in self._plugin_names():
            try:
                entry = self.plugin(name)
            except InputError:  # reported by problems(); never hides the other plugins
                continue
            if entry is not None:
                out.append((name, entry))
        return out

    def problems(self) -> list[str]:
        """One message per installed plugin that fails to load (what `items` left out)."""
        out = []
        for name in self._plugin_names():
            try:
                self.plugin(name)
            except InputError as e:
                out.extend(e.problems)
        return out

    def _plugin_names(self) -> list[str]:
        return sorted(n for n in self.entry_points() if n not in self._builtins)


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as e:  # a broken installed plugin is the user's input, not our crash
        raise InputError(f"entry point '{ep.name}' ({ep.value}) in group '{ep.group}' failed to load: "
                         f"{type(e).__name__}: {e}") from e


def import_object(spec: str) -> object:
    """The object a `pkg.module:attr.sub` path names, or InputError saying which part is wrong."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"plugin '{spec}': expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"plugin '{spec}': cannot import module '{module_name}': {e}") from e
    except Exception as e:  # the module itself raised while importing
        raise InputError(f"plugin '{spec}': importing module '{module_name}' failed: {type(e).__name__}: {e}") from e
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"plugin '{spec}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return obj


def describe(obj: object) -> str:
    """What a plugin pointed at, for a contract error ('function len', 'int 42', 'class Foo')."""
    if isinstance(obj, type):
        return f"class {obj.__qualname__}"
    name = getattr(obj, "__qualname__", None)
    return f"{type(obj).__name__} {name}" if name else f"{type(obj).__name__} {obj!r:.40}"
