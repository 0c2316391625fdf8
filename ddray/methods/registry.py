"""The method registry: built-ins register by decorator; users bring `module:function` plugins or
installed packages' `ddray.methods` entry points, resolved lazily on first use.

Modeled on timm's model registry: one decorator, one lookup with did-you-mean, one listing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from functools import lru_cache

from pydantic import BaseModel

from ddray.errors import InputError, unknown
from ddray.methods.types import DistilledSet, MethodEntry, PluginParams, SynthContext

ENTRY_POINT_GROUP = "ddray.methods"

_REGISTRY: dict[str, MethodEntry] = {}


def register_method(
    name: str,
    params_model: type[BaseModel],
    needs_teacher: bool = False,
    description: str | None = None,
    teacher_if: Callable[[BaseModel], bool] | None = None,
    timed: bool = True,
) -> Callable[[Callable[[SynthContext], DistilledSet]], Callable[[SynthContext], DistilledSet]]:
    """Register `fn(ctx) -> DistilledSet` under `name`; the docstring's first line describes it."""

    def wrap(fn: Callable[[SynthContext], DistilledSet]) -> Callable[[SynthContext], DistilledSet]:
        if name in _REGISTRY:
            raise ValueError(f"method '{name}' is already registered")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = MethodEntry(name, params_model, needs_teacher, fn, doc, teacher_if, timed)
        return fn

    return wrap


def list_methods() -> list[MethodEntry]:
    """Built-in methods, then installed entry-point plugins (sorted by name within each)."""
    builtins = [_REGISTRY[n] for n in sorted(_REGISTRY)]
    plugins = []
    for name in sorted(_entry_points()):
        if name in _REGISTRY:
            continue
        try:
            plugins.append(_entry_point(name))
        except InputError:  # a broken installed plugin must not hide the others; get_method reports it
            continue
    return builtins + [p for p in plugins if p is not None]


def get_method(name: str) -> MethodEntry:
    """A built-in by name, a `module:function` plugin, or an installed `ddray.methods` entry point."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _import_plugin(name)
    entry = _entry_point(name)
    if entry is not None:
        return entry
    raise InputError(unknown("method", name, list(_REGISTRY) + list(_entry_points())))


def method_names() -> list[str]:
    """Names `get_method` resolves without a `module:function` path."""
    return sorted(set(_REGISTRY) | set(_entry_points()))


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _entry_point(name: str) -> MethodEntry | None:
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        obj = ep.load()
    except Exception as e:  # a broken installed plugin is the user's input, not our crash
        raise InputError(f"entry point '{name}' ({ep.value}) failed to load: {type(e).__name__}: {e}") from e
    return _as_entry(name, obj, f"entry point {ep.value}")


def _import_plugin(spec: str) -> MethodEntry:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"plugin '{spec}': expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"plugin '{spec}': cannot import module '{module_name}': {e}") from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"plugin '{spec}': module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return _as_entry(spec, obj, spec)


def _as_entry(name: str, obj: object, origin: str) -> MethodEntry:
    """A plugin object as a MethodEntry: either a MethodEntry already, or a synthesize function."""
    if isinstance(obj, MethodEntry):
        return obj
    if not callable(obj):
        raise InputError(f"plugin '{origin}' is not callable (expected fn(ctx) -> DistilledSet)")
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
    params_model = getattr(obj, "params_model", PluginParams)
    needs_teacher = bool(getattr(obj, "needs_teacher", False))
    return MethodEntry(name, params_model, needs_teacher, _checked_plugin(obj, origin), doc or f"plugin {origin}")


def _checked_plugin(fn: Callable, origin: str) -> Callable[[SynthContext], DistilledSet]:
    """Wrap a user function so whatever it returns is validated like a user's files."""
    from ddray.methods.validate import as_distilled

    def run(ctx: SynthContext) -> DistilledSet:
        out = fn(ctx)
        return as_distilled(out, ctx.data, ctx.ipc, source=f"plugin {origin}").to(ctx.device)

    run.__doc__ = fn.__doc__
    return run
