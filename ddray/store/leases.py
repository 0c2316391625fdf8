"""Leases: one driver trains a trial at a time, even when two `ddray run` share a store.

Why: two drivers of one spec on one store would each see the same keys missing and train them
twice (first writer wins, so the store stays right, but the compute is wasted). The worker that
is about to train a trial claims its key, refreshes a heartbeat while the trial runs, and
releases it when the trial ends. A worker of another driver that finds a live lease does not
train; its driver waits for the row (or for the lease to go stale) and meanwhile runs other
trials; see docs/reliability.md. Claiming at the start of training, not when a trial is queued,
lets each driver queue as many trials as the autoscaler should see without holding them back.

Generations make every claim one exclusive create: a key's leases are `leases/<key>/<gen>.json`
and the one with the highest generation is the lease. A claim creates generation 0 when there
is none, or generation N+1 when N is released or stale; two workers that both judged N stale
both try to create N+1 and exactly one succeeds (link(2) fails if the name exists). Nothing
is ever deleted and re-created under a name someone may still be looking at, so there is no
delete-then-create window. A holder's refresh rewrites only its own generation, and only while
no later one exists: a holder that was declared stale and taken over learns it has lost.

Staleness is judged on the reader's own monotonic clock, never by comparing its wall clock with
the holder's: a lease is stale when its heartbeat has not changed for `ttl_s` while this reader
watched it (hosts whose clocks differ by minutes agree), or at once when its holder is a process
on this machine that no longer exists (a killed run). A driver that saw a lease go stale hands
the trial out again with that lease's `token`; its worker takes the lease over only if it still
holds that same token.

A lease that cannot be read (a permission error, a dropped connection) is not "free": the error
is raised, and the caller waits or retries. pyarrow's object-store filesystems have no
conditional create, so there a claim is written, then read back after a short settle: two
drivers claiming the same key in the same instant can still both win, and then the row's
first-writer-wins keeps the store correct.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from ddray.store.fs import list_files, read_bytes, write_bytes
from ddray.store.store import Store

TTL_S = 120.0
HEARTBEAT_S = 20.0
SETTLE_S = 0.5  # object stores: wait before reading a claim back


@dataclass(frozen=True)
class Lease:
    key: str
    gen: int          # the generation: the highest one of a key is its lease
    owner: str        # the driver's run id
    host: str
    pid: int
    beat: int         # refresh counter: changes on every heartbeat (compared, never used as a time)
    released: bool = False
    trained: bool = False  # the holder started training (not just claimed and found the row stored)

    @property
    def token(self) -> str:
        """What a reader saw: the same token for `ttl_s` of its own clock means a dead holder."""
        return f"{self.gen}:{self.owner}:{self.beat}"

    def dead_here(self) -> bool:
        """Its holder is a process on this machine that no longer exists."""
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


class LeaseLost(Exception):
    """A holder's lease was taken over after it was judged stale (its refresh found a later generation)."""


class Leases:
    """Leases on one store on behalf of one driver (`owner`): claim, refresh in the background, release.

    `clock` is this reader's monotonic clock (tests pass a fake one): staleness is measured on it.
    """

    def __init__(self, store: Store, owner: str | None = None, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.ttl_s, self.heartbeat_s, self.clock = store, ttl_s, heartbeat_s, clock
        self.owner = owner or new_owner()
        self.held: dict[str, Lease] = {}
        self.lost: set[str] = set()
        self._seen: dict[str, tuple[str, float]] = {}   # key -> (token, when this reader first saw it)
        self._lock = threading.Lock()

    def _dir(self, key: str) -> str:
        return self.store.path("leases", key)

    def _path(self, key: str, gen: int) -> str:
        return self.store.path("leases", key, f"{gen:08d}.json")

    def current(self, key: str) -> Lease | None:
        """The lease on `key` (its highest generation), or None when it was never claimed.

        A generation file that does not parse counts as a released one (it can be superseded);
        a read that fails raises (an unreadable lease is not a free one).
        """
        names = list_files(self.store.loc, self._dir(key), ".json", strict=True)
        gens = sorted(int(n[:-5]) for n in names if n[:-5].isdigit())
        if not gens:
            return None
        gen = gens[-1]
        data = read_bytes(self.store.loc, self._path(key, gen))
        try:
            raw = json.loads(data or b"")
            return Lease(key=key, gen=gen, owner=str(raw["owner"]), host=str(raw["host"]), pid=int(raw["pid"]),
                         beat=int(raw["beat"]), released=bool(raw.get("released", False)),
                         trained=bool(raw.get("trained", False)))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return Lease(key=key, gen=gen, owner="?", host="?", pid=0, beat=0, released=True)

    def stale(self, lease: Lease) -> bool:
        """Whether `lease` has not changed for `ttl_s` on this reader's clock (or its local holder is dead)."""
        if lease.released or lease.dead_here():
            return True
        now = self.clock()
        with self._lock:
            token, since = self._seen.get(lease.key, (None, now))
            if token != lease.token:
                self._seen[lease.key] = (lease.token, now)
                return False
        return now - since >= self.ttl_s

    def holder(self, key: str) -> Lease | None:
        """The live lease on `key`, if another driver holds one (stale and released leases count as none)."""
        lease = self.current(key)
        if lease is None or lease.owner == self.owner or self.stale(lease):
            return None
        return lease

    def claim(self, key: str, takeover: str | None = None) -> bool:
        """Take the lease on `key`; False when another driver holds a live one (or won the race for it).

        A released lease, one of this driver's (a retry of the trial, perhaps on another node), one
        this reader has watched go stale, or one whose `token` equals `takeover` (its driver saw it
        stale) is taken over by creating the next generation.
        """
        lease = self.current(key)
        if lease is not None and not (lease.owner == self.owner or lease.token == takeover or self.stale(lease)):
            return False
        gen = 0 if lease is None else lease.gen + 1
        mine = Lease(key, gen, self.owner, socket.gethostname(), os.getpid(), 0)
        if not (write_bytes(self.store.loc, self._path(key, gen), _dump(mine), exclusive=True) and self._settled(mine)):
            return False
        with self._lock:
            self.held[key] = mine
            self.lost.discard(key)
        return True

    def _settled(self, mine: Lease) -> bool:
        if self.store.loc.is_local:
            return True
        time.sleep(SETTLE_S)
        now = self.current(mine.key)
        return now is not None and now.gen == mine.gen and now.owner == self.owner

    def release(self, key: str) -> None:
        """Mark this driver's generation released (never deleted: see the module docstring)."""
        with self._lock:
            lease = self.held.pop(key, None)
        if lease is not None:
            write_bytes(self.store.loc, self._path(key, lease.gen), _dump(Lease(**{**asdict(lease), "released": True})))

    def release_owned(self, keys: Iterable[str]) -> None:
        """Mark released every live lease of this owner among `keys`: after an interrupt, the driver
        frees what its stopped workers held (a worker killed mid-trial never reaches its `release`)."""
        for key in keys:
            try:
                lease = self.current(key)
                if lease is not None and lease.owner == self.owner and not lease.released:
                    write_bytes(self.store.loc, self._path(key, lease.gen),
                                _dump(Lease(**{**asdict(lease), "released": True})))
            except OSError:  # a lease left behind goes stale on its own
                continue

    def training(self, key: str) -> None:
        """Record in the held lease that its trial is now training (one heartbeat): the store's
        record of who trained what, which is how a test counts trainings rather than row writes."""
        self.refresh([key], trained=True)

    def refresh(self, keys: Iterable[str] | None = None, trained: bool = False) -> None:
        """Advance the heartbeat of held leases (all of them by default) that are still ours.

        A lease whose key has a later generation was taken over: it is dropped from `held` and
        recorded in `lost`, and its file is left alone (raises LeaseLost after the others).
        """
        with self._lock:
            keys = list(self.held if keys is None else keys)
        lost = []
        for key in keys:
            with self._lock:
                lease = self.held.get(key)
            if lease is None:
                continue
            now = self.current(key)
            if now is None or now.gen != lease.gen or now.owner != self.owner:
                with self._lock:
                    self.held.pop(key, None)
                    self.lost.add(key)
                lost.append(key)
                continue
            lease = Lease(**{**asdict(lease), "beat": lease.beat + 1, "trained": lease.trained or trained})
            write_bytes(self.store.loc, self._path(key, lease.gen), _dump(lease))
            with self._lock:
                self.held[key] = lease
        if lost:
            raise LeaseLost(", ".join(lost))

    @contextmanager
    def holding(self, key: str, takeover: str | None = None) -> Iterator[bool]:
        """Claim `key` for the block, refreshing its heartbeat meanwhile; yields whether it was claimed."""
        if not self.claim(key, takeover):
            yield False
            return
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    self.refresh([key])
                except LeaseLost:  # taken over: another worker trains it too; the first row written is kept
                    return
                except OSError:  # a store hiccup: the next beat tries again, the TTL allows several misses
                    continue

        thread = threading.Thread(target=beat, name=f"ddray-lease-{key}", daemon=True)
        thread.start()
        try:
            yield True
        finally:
            stop.set()
            thread.join(timeout=5)
            try:
                self.release(key)
            except OSError:  # the trial's outcome stands; an unreleased lease goes stale on its own
                pass


def _dump(lease: Lease) -> bytes:
    raw = asdict(lease)
    raw.pop("key")
    raw.pop("gen")
    return json.dumps(raw).encode()
