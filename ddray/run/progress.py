"""A rich progress bar fed by Tune's callbacks: the benchmark's state at a glance.

It counts trials found already stored as done, so a resumed run shows true overall progress, and
the epochs of running trials as fractions of a trial (the trainable reports them every ~10 s), so
the bar and its ETA move during an hour-long full-data arm too. On
a cluster it also shows the nodes: on an autoscaling cluster trials wait for GPU workers to boot,
and "pending 8 · nodes 0 (+2 starting)" says why nothing runs yet. The cluster is polled from
`on_step_begin` at most once a second (one GCS call and one small KV read); a line is printed
whenever the worker count or the nodes being started change, so logs show it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray import tune
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddray.run.capacity import ClusterView, read_view

POLL_S = 1.0


def cluster_text(view: ClusterView | None) -> str:
    """The bar's cluster column: worker nodes, nodes being started, GPUs ('' before the first look)."""
    if view is None:
        return ""
    text = f" · nodes {view.workers}"
    if view.starting:
        text += f" (+{view.starting} starting)"
    if view.gpus:
        text += f" · GPU {view.gpus:g}"
    return text


def change_line(before: ClusterView | None, now: ClusterView, pending: int) -> str | None:
    """A log line when worker nodes join, leave or start booting; None when nothing changed."""
    if before is not None and (before.workers, before.starting) == (now.workers, now.starting):
        return None
    if before is None and not now.starting and (now.workers or not pending):
        return None  # the first look at a cluster that has what it needs: nothing to tell
    was = before.workers if before is not None else now.workers
    parts = [f"cluster: {now.workers} worker node(s)" + (f" (was {was})" if was != now.workers else "")]
    if now.starting:
        parts.append(f"{now.starting} starting")
    if now.gpus:
        parts.append(f"GPU {now.gpus:g}")
    if pending:
        parts.append(f"{pending} trial(s) waiting for resources")
    return ", ".join(parts)


class ProgressCallback(tune.Callback):
    def __init__(self, total: int, done: int, console: Console | None = None, enabled: bool = True,
                 cluster_view: Callable[[], ClusterView] | None = read_view,
                 describe: Callable[[str], str] | None = None):
        self.total, self.done, self.failed, self.running, self.waiting = total, done, 0, 0, 0
        self.stage = ""
        self.partial: dict[str, float] = {}  # running trial id -> fraction of its epochs done
        self.enabled = enabled
        self.view: ClusterView | None = None
        self.last_poll = 0.0
        self.cluster_view = cluster_view
        self.describe = describe  # key -> its last error in one line (the store has the traceback)
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]} · failed {task.fields[failed]} · pending {task.fields[pending]}"
                       "{task.fields[cluster]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, disable=not enabled, transient=False,
        )
        self.task = self.progress.add_task("trials", total=total, completed=done, running=0, failed=0, pending=0,
                                           cluster="")

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state; the live bar (locks, console) and the
        # cluster reader stay here.
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "console", "cluster_view", "describe")}

    def __enter__(self) -> ProgressCallback:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._refresh()
        self.progress.stop()

    def set_stage(self, stage: str, pending: int) -> None:
        self.stage, self.waiting = stage, pending
        self._refresh()

    def starved(self) -> bool:
        """Trials wait for resources and none runs (what `--max-wait` times)."""
        return self.running == 0 and self.waiting > 0

    def warn(self, message: str) -> None:
        """A warning above the bar (shown even with the bar off: it says a run cannot finish)."""
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    def poll_cluster(self, now: float | None = None) -> None:
        """Look at the cluster at most once per POLL_S; print a line when its nodes changed."""
        now = time.monotonic() if now is None else now
        if self.cluster_view is None or now - self.last_poll < POLL_S:
            return
        self.last_poll = now
        try:
            view = self.cluster_view()
        except Exception:  # noqa: BLE001 — a display aid never stops a run (e.g. GCS briefly away)
            return
        line = change_line(self.view, view, max(self.waiting, 0))
        self.view = view
        if line and self.enabled:
            self.progress.console.print(line, highlight=False)
        self._refresh()

    def _refresh(self) -> None:
        self.progress.update(self.task, completed=self.done + sum(self.partial.values()), running=self.running, failed=self.failed,
                             pending=max(self.waiting, 0), cluster=cluster_text(self.view),
                             description=f"trials [{self.stage}]" if self.stage else "trials")

    # Tune hooks -------------------------------------------------------------
    def on_step_begin(self, iteration, trials, **info):
        self.poll_cluster()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running += 1
        self.waiting -= 1
        self._refresh()

    def _ended(self, trial) -> None:
        """A running trial stopped (stored, failed, or to be retried): no longer running, no partial epochs."""
        self.partial.pop(trial.trial_id, None)
        self.running = max(self.running - 1, 0)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epochs = result.get("epochs")
        if epochs and not result.get("stored"):
            self.partial[trial.trial_id] = min(float(result.get("epoch", 0)) / float(epochs), 0.99)
            self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)
        if (getattr(trial, "last_result", None) or {}).get("failed"):  # an input error: stored, not retried
            self.failed += 1
            self._say_failed(trial)
        else:
            self.done += 1
        self._refresh()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._ended(trial)
        self.waiting += 1
        self._refresh()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)
        self.failed += 1
        self._say_failed(trial)
        self._refresh()

    def _say_failed(self, trial) -> None:
        """One line per failed trial, even without the bar: its label, key and last error."""
        config = (getattr(trial, "config", None) or {}).get("trial") or {}
        key = config.get("key", trial.trial_id)
        why = self.describe(key) if self.describe else ""
        self.console.print(f"[red]failed[/red] {config.get('label', key)} ({key}): {why}", highlight=False, soft_wrap=True)
