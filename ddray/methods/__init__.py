"""Distillation methods: built-in synthesizers, a user's files, and plugins.

Built-ins register themselves on import (`random`, `herding`, `kcenter`, `dm`, `sre2l`, `rded`,
`files`); `get_method("pkg.module:function")` and installed `ddray.methods` entry points bring
a user's own synthesizer. See docs/methods.md.
"""

from __future__ import annotations

from ddray.methods import dm, files, rded, selection, sre2l  # noqa: F401  (register built-ins)
from ddray.methods.contract import DistilledSet, MethodEntry, MethodParams, PluginParams, SynthContext
from ddray.methods.files import FilesParams, load_files
from ddray.methods.persist import load_distilled, save_distilled
from ddray.methods.registry import ENTRY_POINT_GROUP, get_method, list_methods, register_method
from ddray.methods.timing import synthesize
from ddray.methods.validate import check_set, class_major_labels

__all__ = [
    "ENTRY_POINT_GROUP",
    "DistilledSet",
    "FilesParams",
    "MethodEntry",
    "MethodParams",
    "PluginParams",
    "SynthContext",
    "check_set",
    "class_major_labels",
    "get_method",
    "list_methods",
    "load_distilled",
    "load_files",
    "register_method",
    "save_distilled",
    "synthesize",
]
