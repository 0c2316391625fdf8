"""Whether a stored row still measures today's inputs: its recorded digests against the files now.

A key names *which* inputs a trial reads, its row records *what* they were (`inputs_json`,
`ddray.digests`). Before a stored row is reused, the driver recomputes the digests of the files
and data it can see and compares: a row whose files or data changed is stale, set aside
(`stale/` in the store, never deleted) and recomputed, so a report never shows an old number
under new inputs and never averages the two. What the driver cannot see (a file absent here, a
data root mounted only on the workers) is said, not guessed: `ddray plan` lists those trials as
not resolvable yet, and their rows are checked where the files are.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ddray.digests import data_fingerprint, file_digests, input_paths, stale_inputs
from ddray.trials import Trial


@dataclass(frozen=True)
class StaleRow:
    """A stored row whose recorded inputs differ from today's: which, and how."""

    stage: str
    key: str
    label: str
    changed: tuple[str, ...]     # roles: files, teacher.0, checkpoint, data

    @property
    def reason(self) -> str:
        return f"its {', '.join(self.changed)} changed since it was computed"


def absent_inputs(trials: Iterable[Trial]) -> dict[str, list[str]]:
    """Trial label -> the paths of its external files that are not on this machine (plan: not resolvable yet)."""
    out: dict[str, list[str]] = {}
    for t in trials:
        missing = [p for p in input_paths(t.config).values() if not os.path.exists(os.path.expanduser(p))]
        if missing:
            out[t.label] = missing
    return out


class _DataPrints:
    """The fingerprint of each dataset on this machine, computed once (None where it cannot load here)."""

    def __init__(self, roots: Mapping[str, str | None]):
        self.roots, self.known = roots, {}  # type: ignore[var-annotated]

    def of(self, config: Any) -> str | None:
        ds = config.dataset
        with_test = config.stage != "search"  # what `digests.trial_inputs` recorded for this stage
        ident = (ds.name, ds.loader, json.dumps(ds.options, sort_keys=True), with_test)
        if ident not in self.known:
            from ddray.data import load_dataset
            from ddray.errors import InputError

            try:
                data = load_dataset(ds.loader, self.roots.get(ds.name), field=f"datasets.{ds.name}.root", **ds.options)
                self.known[ident] = data_fingerprint(data, with_test=with_test)
            except (InputError, OSError, ValueError):
                self.known[ident] = None
        return self.known[ident]


def stale_rows(trials: Mapping[str, Trial], rows: Iterable[Mapping[str, Any]],
               roots: Mapping[str, str | None]) -> list[StaleRow]:
    """The stored rows (`key`, `stage`, `inputs_json`) of planned trials whose inputs changed.

    Rows that recorded no inputs (written before digests were) are not judged: nothing says they
    are stale, and recomputing every old row on upgrade is what layouts that evolve must avoid.
    """
    prints = _DataPrints(roots)
    out = []
    for row in rows:
        trial = trials.get(row["key"])
        if trial is None or not row.get("inputs_json"):
            continue
        recorded = json.loads(row["inputs_json"])
        current = file_digests(trial.config)
        if "data" in recorded:
            fp = prints.of(trial.config)
            if fp is not None:
                current["data"] = fp
        changed = stale_inputs(recorded, current)
        if changed:
            out.append(StaleRow(row["stage"], row["key"], trial.label, tuple(changed)))
    return out
