"""How a report names a track for people: titles, captions and LaTeX labels.

Internally a track is `fixed` or `tuned`, with `:<variant>` when one store holds a cell under
several recipes (`report/variants.py`), e.g. `fixed:ddranking-hard`. That id is right for
files and filters but reads as jargon in a title or a paper's caption, so every human-facing
place goes through `track_title`.
"""

from __future__ import annotations

import re

TRACK_KEY = {
    "fixed": "every method evaluated under one shared protocol (the spec's preset)",
    "tuned": "each method evaluated under its own tuned hyperparameters (the tuned track's search)",
}
"""What each base track means (the page's glossary)."""


def track_title(track: str) -> str:
    """'track fixed' or 'track fixed, recipe ddranking-hard'."""
    base, _, variant = track.partition(":")
    return f"track {base}" + (f", recipe {variant}" if variant else "")


def track_slug(track: str) -> str:
    """A LaTeX-label / HTML-id safe form of a track: letters, digits and dashes."""
    return re.sub(r"[^A-Za-z0-9]+", "-", track).strip("-")

