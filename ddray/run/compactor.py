"""Fold stored rows into the store's index while a run goes on (`store/segments.py`).

Why during the run and not only at its end: a driver killed after hours of trials would leave
every row it stored unindexed, and the next `status` would read them all one by one. Every
`every` finished trials one compaction runs in a background thread (never two at once from one
driver), so Tune's loop is not held up by the store's I/O; `finish` waits for it and runs the
last one, whose scan is the run's closing count of what is stored.
"""

from __future__ import annotations

import threading
from typing import Any

from ray import tune

from ddray.store import Store
from ddray.store.scan import RowScan

COMPACT_EVERY = 500  # finished trials between two compactions of a running driver


class Compactor(tune.Callback):
    def __init__(self, store: Store, every: int = COMPACT_EVERY):
        self.store, self.every = store, every
        self.since = 0
        self.thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; a running thread stays here.
        return {k: v for k, v in self.__dict__.items() if k != "thread"}

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.since += 1
        if self.since < self.every or (self.thread is not None and self.thread.is_alive()):
            return
        self.since = 0
        self.thread = threading.Thread(target=self._compact, name="ddray-compact", daemon=True)
        self.thread.start()

    def _compact(self) -> None:
        try:
            self.store.compact()
        except OSError:  # the index is a cache: a failed compaction loses nothing, the next one retries
            pass

    def finish(self) -> RowScan:
        """Wait for a compaction in flight, then fold everything stored; returns what is stored now."""
        if self.thread is not None:
            self.thread.join()
        return final_scan(self.store)


def final_scan(store: Store) -> RowScan:
    """Compact, and return the scan it read; when the index cannot be written, a plain scan."""
    try:
        return store.compact().scan
    except OSError:
        return store.scan()
