"""A rich progress bar fed by Tune's callbacks: the benchmark's state at a glance.

It counts trials found already stored as done, so a resumed run shows true overall progress.
"""

from __future__ import annotations

from typing import Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressCallback(tune.Callback):
    def __init__(self, total: int, done: int, console: Console | None = None, enabled: bool = True):
        self.total, self.done, self.failed, self.running, self.waiting = total, done, 0, 0, 0
        self.stage = ""
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]} · failed {task.fields[failed]} · pending {task.fields[pending]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console or Console(stderr=True), disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task("trials", total=total, completed=done, running=0, failed=0, pending=0)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; the live bar (locks, console) stays here.
        return {k: v for k, v in self.__dict__.items() if k != "progress"}

    def __enter__(self) -> ProgressCallback:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._refresh()
        self.progress.stop()

    def set_stage(self, stage: str, pending: int) -> None:
        self.stage, self.waiting = stage, pending
        self._refresh()

    def _refresh(self) -> None:
        self.progress.update(self.task, completed=self.done, running=self.running, failed=self.failed,
                             pending=max(self.waiting, 0), description=f"trials [{self.stage}]" if self.stage else "trials")

    # Tune hooks -------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.running += 1
        self.waiting -= 1
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running = max(self.running - 1, 0)
        self.done += 1
        self._refresh()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.running = max(self.running - 1, 0)
        self.waiting += 1
        self._refresh()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running = max(self.running - 1, 0)
        self.failed += 1
        self._refresh()
