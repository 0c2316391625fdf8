"""Leases: one driver trains a trial at a time, even when two `ddray run` share a store.

Why: two drivers of one spec on one store would each see the same keys missing and train them
twice (first writer wins, so the store stays right, but the compute is wasted). The worker that
is about to train a trial claims its key by creating `leases/<key>.json` exclusively (owner: its
driver's run id), refreshes a heartbeat in it while the trial runs, and deletes it when the trial
ends. A worker of another driver that finds a live lease does not train; its driver waits for the
row (or for the lease to go stale) and meanwhile runs other trials; see docs/reliability.md.
Claiming at the start of training, not when a trial is queued, lets each driver queue as many
trials as the autoscaler should see without holding them back from the other.

A lease is stale when its heartbeat is older than `ttl_s` (the holder's node is gone), or at
once when its holder is a process on this machine that no longer exists (a killed run: a rerun
right after a kill must not wait a minute per trial).

Creation is atomic on local folders (link(2) fails if the name exists). pyarrow's object-store
filesystems have no conditional create, so there a claim is written, then read back after a
short settle: two drivers claiming the same key in the same instant can still both win, and then
the row's first-writer-wins keeps the store correct.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from ddray.store.fs import delete_file, read_bytes, write_bytes
from ddray.store.store import Store

TTL_S = 120.0
HEARTBEAT_S = 20.0
SETTLE_S = 0.5  # object stores: wait before reading a claim back


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str        # the driver's run id
    host: str
    pid: int
    heartbeat: float  # unix time of the last refresh

    def stale(self, now: float, ttl_s: float) -> bool:
        if now - self.heartbeat > ttl_s:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def new_owner() -> str:
    """A driver's run id: every lease its workers take carries it."""
    return uuid.uuid4().hex[:12]


class Leases:
    """Leases on one store on behalf of one driver (`owner`): claim, refresh in the background, release."""

    def __init__(self, store: Store, owner: str | None = None, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S):
        self.store, self.ttl_s, self.heartbeat_s = store, ttl_s, heartbeat_s
        self.owner = owner or new_owner()
        self.held: set[str] = set()
        self._lock = threading.Lock()

    def _path(self, key: str) -> str:
        return self.store.path("leases", f"{key}.json")

    def _mine(self, key: str) -> bytes:
        lease = Lease(key, self.owner, socket.gethostname(), os.getpid(), time.time())
        return json.dumps(asdict(lease)).encode()

    def holder(self, key: str) -> Lease | None:
        """The live lease on `key`, if another driver holds one (stale and unreadable leases count as none)."""
        lease = self._read(key)
        if lease is None or lease.owner == self.owner or lease.stale(time.time(), self.ttl_s):
            return None
        return lease

    def _read(self, key: str) -> Lease | None:
        data = read_bytes(self.store.loc, self._path(key))
        try:
            raw = json.loads(data or b"")
            return Lease(key=key, owner=str(raw["owner"]), host=str(raw["host"]), pid=int(raw["pid"]),
                         heartbeat=float(raw["heartbeat"]))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def claim(self, key: str) -> bool:
        """Take the lease on `key`; False when another driver holds a live one.

        A lease of this driver's (a retry of the trial, perhaps on another node) is taken over.
        """
        path = self._path(key)
        if write_bytes(self.store.loc, path, self._mine(key), exclusive=True):
            won = self._settled(key)
        elif self.holder(key) is None:  # ours, stale or unreadable: replace it, then make sure we hold it
            delete_file(self.store.loc, path)
            won = write_bytes(self.store.loc, path, self._mine(key), exclusive=True) and self._settled(key)
        else:
            won = False
        if won:
            with self._lock:
                self.held.add(key)
        return won

    def _settled(self, key: str) -> bool:
        if self.store.loc.is_local:
            return True
        time.sleep(SETTLE_S)
        lease = self._read(key)
        return lease is not None and lease.owner == self.owner

    def release(self, key: str) -> None:
        with self._lock:
            if key not in self.held:
                return
            self.held.discard(key)
        lease = self._read(key)
        if lease is not None and lease.owner == self.owner:
            delete_file(self.store.loc, self._path(key))

    def refresh(self, keys: Iterable[str] | None = None) -> None:
        """Rewrite the heartbeat of held leases (all of them by default)."""
        with self._lock:
            keys = list(self.held if keys is None else keys)
        for key in keys:
            write_bytes(self.store.loc, self._path(key), self._mine(key))

    @contextmanager
    def holding(self, key: str) -> Iterator[bool]:
        """Claim `key` for the block, refreshing its heartbeat meanwhile; yields whether it was claimed."""
        if not self.claim(key):
            yield False
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    self.refresh([key])
                except OSError:  # a store hiccup: the next beat tries again, the TTL allows several misses
                    continue

        thread = threading.Thread(target=beat, name=f"ddray-lease-{key}", daemon=True)
        thread.start()
        try:
            yield True
        finally:
            stop.set()
            thread.join(timeout=5)
            self.release(key)
