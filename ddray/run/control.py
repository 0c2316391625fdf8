"""When a run stops early: Ctrl-C, and a cluster that never gets the resources a trial asks for.

Why ddray handles SIGINT itself instead of Tune: Tune catches the first Ctrl-C, ends the
experiment and returns normally, so the driver could not tell an interrupted run from a finished
one (it printed "0 failed" and exited 0 while most trials never ran). Here the first Ctrl-C stops
handing out trials and stops the running ones (their resume checkpoints stay in the store); the
run then says what was not run and exits 130. A second Ctrl-C raises KeyboardInterrupt at once.
SIGTERM (what `timeout`, systemd, Kubernetes and Slurm send) takes the same path and exits 143
(128 + 15); without this, Ray's own handler aborted the driver with a C++ stack dump.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

from ray import tune

# Tune would otherwise install its own SIGINT handler over ours during `Tuner.fit`.
TUNE_SIGINT_ENV = ("TUNE_DISABLE_SIGINT_HANDLER", "1")


SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    """A SIGINT/SIGTERM latch for the duration of a run (main thread only; elsewhere a no-op).

    `signum` is the first signal received (the exit code is 128 + it)."""

    def __init__(self, on_interrupt: Callable[[], None]):
        self.on_interrupt = on_interrupt
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()
        self.signum = self.signum or signum
        for s in SIGNALS:  # a second signal stops at once
            signal.signal(s, signal.default_int_handler)
        self.on_interrupt()

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, previous in self._previous.items():
            signal.signal(s, previous)  # type: ignore[arg-type]

    @property
    def is_set(self) -> bool:
        return self.event.is_set()


class RunStopper(tune.Stopper):
    """Ends the Tune experiment on an interrupt, or when trials have waited `max_wait_s` for resources.

    `waiting()` says how many trials wait for resources with none running; the clock restarts
    whenever that is not the case (something runs, or nothing waits).
    """

    def __init__(self, interrupted: threading.Event, waiting: Callable[[], bool], max_wait_s: float | None = None):
        self.interrupted, self.waiting, self.max_wait_s = interrupted, waiting, max_wait_s
        self.gave_up = False
        self._since: float | None = None

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.interrupted.is_set():
            return True
        if self.max_wait_s is None:
            return False
        now = time.monotonic()
        if not self.waiting():
            self._since = None
            return False
        self._since = self._since or now
        if now - self._since >= self.max_wait_s:
            self.gave_up = True
        return self.gave_up

    def __getstate__(self) -> dict:
        # Tune pickles its stopper into the experiment state; the live callables stay here.
        return {"max_wait_s": self.max_wait_s, "gave_up": self.gave_up}
