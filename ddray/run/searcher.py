"""The ReadyQueue as a Ray Tune Searcher: Tune asks for a trial whenever it could place one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from ddray.run.schedule import ReadyQueue
from ddray.store.leases import Leases
from ddray.trials import Trial

RECHECK_S = 2.0  # how often keys leased by another driver are looked at again


class DependencySearcher(Searcher):
    """Tune's view of a ReadyQueue: `suggest` hands out ready trials, completions release dependants.

    A completion counts only when the trial's row is stored (`is_stored`): Tune also "completes"
    pending trials it stops at shutdown, and those must not release their dependants. A trial
    whose worker found it leased by another driver (`store/leases.py`) waits aside until its row
    appears (then it counts as stored by that driver) or the lease goes stale (then it is handed
    out again). After `interrupt()` nothing new is handed out and stopped trials count as not run.
    """

    def __init__(self, queue: ReadyQueue, configs: dict[str, dict[str, Any]], is_stored: Callable[[Trial], bool],
                 leases: Leases | None = None):
        super().__init__()
        self.queue, self.configs, self.is_stored, self.leases = queue, configs, is_stored, leases
        self.keys: dict[str, str] = {}          # Tune trial id -> ddray key
        self.elsewhere: dict[str, Trial] = {}   # keys another driver holds, waiting for their rows
        self.written: set[str] = set()          # keys whose row this driver's workers wrote
        self.stopped: set[str] = set()          # keys stopped by an interrupt (not run, not failed)
        self.takeover: dict[str, str] = {}      # key -> token of the stale lease its next worker may take over
        self.interrupted = threading.Event()
        self._checked = 0.0

    def interrupt(self) -> None:
        self.interrupted.set()

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.interrupted.is_set():
            return Searcher.FINISHED
        self._recheck_elsewhere()
        trial = self.queue.pop()
        if trial is None:
            return Searcher.FINISHED if self.queue.finished and not self.elsewhere else None
        self.keys[trial_id] = trial.key
        takeover = self.takeover.pop(trial.key, None)
        return {"trial": self.configs[trial.key], **({"takeover": takeover} if takeover else {})}

    def _recheck_elsewhere(self, now: float | None = None) -> None:
        """Keys held by another driver: stored now (release dependants), or free again (hand out)."""
        now = time.monotonic() if now is None else now
        if not self.elsewhere or now - self._checked < RECHECK_S:
            return
        self._checked = now
        for key, trial in list(self.elsewhere.items()):
            if self.is_stored(trial):
                del self.elsewhere[key]
                self.queue.complete(key)
            elif self.leases is not None and self._free(key):
                del self.elsewhere[key]
                self.queue.retry(key)

    def _free(self, key: str) -> bool:
        """Whether the other driver's lease on `key` is gone or stale; a stale one's token goes to the retry."""
        try:
            lease = self.leases.current(key)
        except OSError:  # an unreadable lease is not a free one: look again at the next recheck
            return False
        if lease is None or lease.owner == self.leases.owner:
            return True
        if not self.leases.stale(lease):
            return False
        self.takeover[key] = lease.token  # its worker may take over exactly this lease, not a later one
        return True

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get("wrote") and trial_id in self.keys:
            self.written.add(self.keys[trial_id])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.keys.get(trial_id)
        if key is None:
            return
        if result and result.get("wrote"):
            self.written.add(key)
        if result and result.get("elsewhere") and not error:  # another driver trains it: wait for its row
            self.elsewhere[key] = self.queue.trial(key)
            return
        if not error and self.is_stored(self.queue.trial(key)):
            self.queue.complete(key)
        elif self.interrupted.is_set() and not error:
            self.stopped.add(key)
            self.queue.stop(key)
        else:
            self.queue.fail(key)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its searcher into the experiment state; the live leases and the interrupt
        # latch (threads, locks) stay here. Nothing is restored from that state (see `save`).
        return {k: v for k, v in self.__dict__.items() if k not in ("leases", "interrupted")}

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the store is the run's state of record (a rerun plans from its keys)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""
