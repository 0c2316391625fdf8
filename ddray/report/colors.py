"""One colour per method for the whole report: the page's charts and the PNG figures alike.

Why from the name and not from the order of appearance: a method must keep its colour across
tracks, figures and re-runs of the same store (a reader learns "dm is blue" once). Built-in
methods get fixed, well-separated colours; any other name is hashed (crc32, stable across
Python runs, unlike `hash`) into a second palette. The map travels into the page's data and
into each PNG's text chunk `ddray:legend`, so a test can check both agree.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

FIXED = {
    "random": "#7f7f7f", "herding": "#1f77b4", "kcenter": "#ff7f0e", "dm": "#2ca02c", "sre2l": "#9467bd",
    "rded": "#d62728", "rdm": "#bcbd22", "full": "#17becf",
}
"""Built-in methods (and the shared rdm / full arms) by name."""
HASHED = ("#8c564b", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
          "#e6550d", "#31a354", "#756bb1", "#636363", "#17a589", "#c0392b", "#2e4053", "#b7950b")
"""Colours for other method names, none of them one of FIXED's."""
PNG_KEY = "ddray:legend"
"""PNG text chunk holding the JSON {method: colour} of the figure's legend."""


def method_color(method: str) -> str:
    """The colour of `method` (a #rrggbb string): fixed for built-ins, hashed from the name otherwise."""
    return FIXED.get(method) or HASHED[zlib.crc32(method.encode("utf-8")) % len(HASHED)]


def color_map(methods: Iterable[str]) -> dict[str, str]:
    """{method: colour} for the given methods, sorted by name."""
    return {m: method_color(m) for m in sorted(set(methods))}


def legend_metadata(methods: Iterable[str]) -> dict[str, str]:
    """PNG metadata naming the legend's colours (matplotlib's `savefig(metadata=...)`)."""
    return {PNG_KEY: json.dumps(color_map(methods), sort_keys=True)}
