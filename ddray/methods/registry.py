"""The method registry: built-ins register by decorator; users bring `module:function` plugins or
installed packages' `ddray.methods` entry points, resolved lazily on first use.

The mechanics (lookup with did-you-mean, listing, entry points, broken plugins) are
`ddray.registry.Registry`; this module holds what is particular to methods: how a plugin function
becomes a `MethodEntry`, and that whatever a plugin returns is validated like a user's files.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from ddray.errors import InputError
from ddray.methods.contract import DistilledSet, MethodEntry, PluginParams, SynthContext
from ddray.registry import Registry, describe

ENTRY_POINT_GROUP = "ddray.methods"


def _as_entry(name: str, obj: object, origin: str) -> MethodEntry:
    """A plugin object as a MethodEntry: either a MethodEntry already, or a synthesize function."""
    if isinstance(obj, MethodEntry):
        return obj
    if not callable(obj):
        raise InputError(f"{origin} is not callable (expected fn(ctx) -> DistilledSet, got {describe(obj)})")
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
    params_model = getattr(obj, "params_model", PluginParams)
    needs_teacher = bool(getattr(obj, "needs_teacher", False))
    return MethodEntry(name, params_model, needs_teacher, _checked_plugin(obj, origin), doc or origin)


def _checked_plugin(fn: Callable, origin: str) -> Callable[[SynthContext], DistilledSet]:
    """Wrap a user function so whatever it returns is validated like a user's files."""
    from ddray.methods.validate import as_distilled

    def run(ctx: SynthContext) -> DistilledSet:
        out = fn(ctx)
        return as_distilled(out, ctx.data, ctx.ipc, source=origin).to(ctx.device)

    run.__doc__ = fn.__doc__
    return run


methods: Registry[MethodEntry] = Registry("method", ENTRY_POINT_GROUP, _as_entry, import_paths=True)


def register_method(
    name: str,
    params_model: type[BaseModel],
    needs_teacher: bool = False,
    description: str | None = None,
    teacher_if: Callable[[BaseModel], bool] | None = None,
    timed: bool = True,
    trained_arch: Callable[[BaseModel], str | None] | None = None,
) -> Callable[[Callable[[SynthContext], DistilledSet]], Callable[[SynthContext], DistilledSet]]:
    """Register `fn(ctx) -> DistilledSet` under `name`; the docstring's first line describes it."""

    def wrap(fn: Callable[[SynthContext], DistilledSet]) -> Callable[[SynthContext], DistilledSet]:
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        methods.register(name, MethodEntry(name, params_model, needs_teacher, fn, doc, teacher_if, timed, trained_arch))
        return fn

    return wrap


def list_methods() -> list[MethodEntry]:
    """Built-in methods, then installed entry-point plugins (sorted by name within each)."""
    return [entry for _, entry in methods.items()]


def get_method(name: str) -> MethodEntry:
    """A built-in by name, a `module:function` plugin, or an installed `ddray.methods` entry point."""
    return methods.get(name)
