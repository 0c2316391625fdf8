"""The ReadyQueue as a Ray Tune Searcher: Tune asks for a trial whenever it could place one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune.search import Searcher

from ddray.trials import Trial
from ddray.run.schedule import ReadyQueue


class DependencySearcher(Searcher):
    """Tune's view of a ReadyQueue: `suggest` hands out ready trials, completions release dependants.

    A completion counts only when the trial's row is stored (`is_stored`): Tune also "completes"
    pending trials it stops at shutdown, and those must not release their dependants.
    """

    def __init__(self, queue: ReadyQueue, configs: dict[str, dict[str, Any]], is_stored: Callable[[Trial], bool]):
        super().__init__()
        self.queue, self.configs, self.is_stored = queue, configs, is_stored
        self.keys: dict[str, str] = {}  # Tune trial id -> ddray key

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        trial = self.queue.pop()
        if trial is None:
            return Searcher.FINISHED if self.queue.finished else None
        self.keys[trial_id] = trial.key
        return {"trial": self.configs[trial.key]}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self.keys.get(trial_id)
        if key is None:
            return
        if not error and self.is_stored(self.queue.trial(key)):
            self.queue.complete(key)
        else:
            self.queue.fail(key)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the store is the run's state of record (a rerun plans from its keys)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""
