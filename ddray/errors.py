"""User-facing errors.

Every mistake a user can make in a spec, a data root or a distilled-set file ends as an
`InputError`: the CLI prints its lines ("path.to.field: message") and exits 2, never a traceback.
Errors collect several problems at once so one `ddray validate` shows all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class InputError(Exception):
    """Bad input: one or more `path.to.field: message` problems (exit code 2)."""

    def __init__(self, problems: str | Sequence[str] | Sequence[tuple[str, str]], path: str | None = None):
        items: list[str] = []
        if isinstance(problems, str):
            items = [f"{path}: {problems}" if path else problems]
        else:
            for p in problems:
                items.append(f"{p[0]}: {p[1]}" if isinstance(p, tuple) else str(p))
        self.problems = items
        super().__init__("\n".join(items))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> str:
    """The message for an unknown registry name, listing what exists."""
    choices = sorted(choices)
    return f"unknown {kind} '{name}'{did_you_mean(name, choices)}; known: {', '.join(choices)}"
