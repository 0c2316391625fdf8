"""Which planned trial runs next: a trial starts as soon as its dependencies are stored, longest first.

Pure bookkeeping (no Ray import); `run/searcher.py` adapts it to Tune.

Why one Tuner fed by a Searcher rather than one Tuner per dependency wave: a wave ends when its
longest trial does, so evaluations whose distilled sets were stored early waited for an unrelated
full-data trial (on Fashion-MNIST, an hour of one core while the other idled), and every wave paid
Tune's start-up again (new workers importing torch). Tune asks the Searcher for a trial whenever it
could place one; the Searcher hands out the ready trial with the most expected work (list
scheduling, longest first), and holds back the dependants of a failed trial for a later run.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar


class Schedulable(Protocol):
    """What the queue needs of a trial: its key and the keys it waits for."""

    @property
    def key(self) -> str: ...

    @property
    def deps(self) -> tuple[str, ...]: ...


Trial = TypeVar("Trial", bound=Schedulable)


class ReadyQueue(Generic[Trial]):
    """The run's dependency bookkeeping, without Ray: what is ready, handed out, done, failed.

    A trial is ready when each of its dependencies is stored (before the run, or completed in
    it). Dependants of a failed trial, and of a dependency that is neither stored nor planned,
    never become ready; `unstarted()` lists them when the run ends.
    """

    def __init__(self, trials: Sequence[Trial], stored: set[str], order: Callable[[Trial], Any]):
        self._trials = {t.key: t for t in trials}
        self._rank = {t.key: (order(t), i) for i, t in enumerate(trials)}  # ties keep the plan's order
        self._missing: dict[str, int] = {}
        self._dependants: dict[str, list[str]] = defaultdict(list)
        self._heap: list[tuple[Any, str]] = []
        self.in_flight: set[str] = set()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.stopped: set[str] = set()
        for t in trials:
            need = sorted({d for d in t.deps if d not in stored})
            self._missing[t.key] = len(need)
            for d in need:
                self._dependants[d].append(t.key)
            if not need:
                self._push(t.key)

    def _push(self, key: str) -> None:
        heapq.heappush(self._heap, (self._rank[key], key))

    def pop(self) -> Trial | None:
        """The ready trial with the most expected work, marked in flight; None when none is ready."""
        if not self._heap:
            return None
        _, key = heapq.heappop(self._heap)
        self.in_flight.add(key)
        return self._trials[key]

    def complete(self, key: str) -> None:
        """`key` is stored: its dependants may now be ready."""
        self.in_flight.discard(key)
        self.done.add(key)
        for k in self._dependants.get(key, ()):
            self._missing[k] -= 1
            if self._missing[k] == 0:
                self._push(k)

    def fail(self, key: str) -> None:
        """`key` failed for good in this run: its dependants wait for the next run."""
        self.in_flight.discard(key)
        self.failed.add(key)

    def retry(self, key: str) -> None:
        """`key` was handed out but not run (another driver held it, and no longer does): ready again."""
        self.in_flight.discard(key)
        self._push(key)

    def stop(self, key: str) -> None:
        """`key` was stopped before it finished (an interrupted run): neither done nor failed."""
        self.in_flight.discard(key)
        self.stopped.add(key)

    @property
    def finished(self) -> bool:
        """Nothing ready and nothing running: whatever is left can never become ready in this run."""
        return not self._heap and not self.in_flight

    def trial(self, key: str) -> Trial:
        return self._trials[key]

    def unstarted(self) -> list[str]:
        """Keys never handed out (waiting on a failed or missing dependency), in plan order."""
        seen = self.in_flight | self.done | self.failed | self.stopped | {k for _, k in self._heap}
        return [k for k in self._trials if k not in seen]
