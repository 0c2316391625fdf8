"""Lease races reproduced deterministically: real files in a real store, threads, a fake clock, no sleeps."""

from __future__ import annotations

import json
import threading

import pytest

import ddray.store.leases as leases_mod
from ddray.store import Store
from ddray.store.leases import LeaseLost, Leases


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _leases(store, owner, clock=None):
    return Leases(store, owner=owner, ttl_s=120.0, clock=clock or Clock())


def _stale_for(reader: Leases, clock: Clock, key: str) -> None:
    """Let `reader` watch the lease on `key` stay unchanged for its whole TTL."""
    assert reader.holder(key) is not None     # first sight: live
    clock.t += 121.0
    assert reader.holder(key) is None         # unchanged for the TTL on the reader's own clock: stale


def test_two_workers_that_both_saw_a_stale_lease_cannot_both_take_it_over(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "store"))
    assert _leases(store, "dead").claim("k")
    clocks = {"a": Clock(), "b": Clock()}
    racers = {name: _leases(store, name, clocks[name]) for name in "ab"}
    for name, racer in racers.items():
        _stale_for(racer, clocks[name], "k")
    # Both read the stale lease, then A finishes its takeover before B writes: the old delete-then-create
    # let B delete A's fresh lease and create its own, so both won.
    read, both_read, a_done = leases_mod.read_bytes, threading.Barrier(2), threading.Event()
    local = threading.local()

    def gated_read(loc, path):
        data = read(loc, path)
        if threading.current_thread().name in "ab" and not getattr(local, "passed", False):
            local.passed = True
            both_read.wait(timeout=10)
            if threading.current_thread().name == "b":
                a_done.wait(timeout=10)
        return data

    monkeypatch.setattr(leases_mod, "read_bytes", gated_read)
    won: dict[str, bool] = {}

    def claim(name):
        won[name] = racers[name].claim("k")
        if name == "a":
            a_done.set()

    threads = [threading.Thread(target=claim, args=(n,), name=n) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    monkeypatch.undo()
    assert won == {"a": True, "b": False}
    assert racers["b"].holder("k").owner == "a"


def test_a_holder_declared_stale_and_taken_over_cannot_take_the_lease_back(tmp_path):
    store = Store(str(tmp_path / "store"))
    old, clock = _leases(store, "old"), Clock()
    new = _leases(store, "new", clock)
    assert old.claim("k")
    _stale_for(new, clock, "k")
    assert new.claim("k")
    with pytest.raises(LeaseLost):
        old.refresh(["k"])      # its refresh finds the later generation and leaves it alone
    assert "k" in old.lost and "k" not in old.held
    assert _leases(store, "third").holder("k").owner == "new"
    old.release("k")            # not held any more: releases nothing
    assert _leases(store, "third").holder("k").owner == "new"


def test_staleness_is_judged_on_the_readers_clock_not_by_comparing_wall_clocks(tmp_path):
    store = Store(str(tmp_path / "store"))
    holder, clock = _leases(store, "holder"), Clock()
    reader = _leases(store, "reader", clock)
    assert holder.claim("k")
    # Whatever the holder's wall clock said, a lease first seen now is live, and stays live while it beats.
    assert reader.holder("k") is not None
    for _ in range(5):
        clock.t += 100.0
        holder.refresh(["k"])
        assert reader.holder("k") is not None
    clock.t += 119.0
    assert reader.holder("k") is not None
    clock.t += 2.0
    assert reader.holder("k") is None          # unchanged for 121 s of the reader's clock


def test_an_unreadable_lease_is_not_a_free_one(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "store"))
    assert _leases(store, "holder").claim("k")

    def refused(loc, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(leases_mod, "read_bytes", refused)
    other = _leases(store, "other")
    with pytest.raises(PermissionError):
        other.holder("k")
    with pytest.raises(PermissionError):
        other.claim("k")


def test_a_released_lease_is_claimed_again_as_the_next_generation_and_a_takeover_token_is_honoured(tmp_path):
    store = Store(str(tmp_path / "store"))
    first, second = _leases(store, "first"), _leases(store, "second")
    with first.holding("k") as held:
        assert held
        assert not second.claim("k")           # live: a fresh reader does not take it
    assert second.claim("k")                   # released: the next generation
    lease = second.current("k")
    assert lease.gen == 1 and lease.owner == "second"
    third = _leases(store, "third")
    assert not third.claim("k", takeover="0:first:0")   # a token of an older lease takes nothing
    assert third.claim("k", takeover=lease.token)       # its driver saw exactly this lease stale
    files = sorted(p.name for p in (tmp_path / "store" / "leases" / "k").iterdir())
    assert files == ["00000000.json", "00000001.json", "00000002.json"]
    assert json.loads((tmp_path / "store" / "leases" / "k" / "00000000.json").read_text())["released"]


def test_the_row_is_checked_again_after_the_claim(tmp_path, monkeypatch):
    """A holder that stores its row and releases between this worker's row check and its claim:
    the claim succeeds (the lease is released), and only the check after it stops a second training."""
    import ddray.run.trainable as trainable
    from tests.conftest import TINY_SPEC, planned

    trial = planned(TINY_SPEC).trials[0]
    store = Store(str(tmp_path / "store"))
    reports, trained = [], []
    monkeypatch.setattr(trainable.tune, "report", reports.append)
    monkeypatch.setattr(trainable, "_train_and_store", lambda *a: trained.append(a))
    claim = Leases.claim

    def claim_after_the_other_stored(self, key, takeover=None):
        path = tmp_path / "store" / "rows" / trial.stage / f"{key}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"the other driver's row")
        return claim(self, key, takeover)

    monkeypatch.setattr(Leases, "claim", claim_after_the_other_stored)
    trainable.run_trial({"trial": trial.to_dict(), "env": {"store": str(tmp_path / "store")}, "owner": "me"})
    assert trained == [] and reports == [{"stored": 1, "top1": -1.0}]


def test_the_driver_hands_out_again_only_a_lease_it_watched_go_stale_with_its_token(tmp_path):
    """The driver judges staleness on its own clock and gives the retry that lease's token, which a
    worker (a fresh reader that never saw the lease before) needs to take it over."""
    from ddray.run.schedule import ReadyQueue
    from ddray.run.searcher import RECHECK_S, DependencySearcher
    from tests.test_schedule import order, t

    store, clock = Store(str(tmp_path / "store")), Clock()
    other = _leases(store, "other")
    assert other.claim("k")
    searcher = DependencySearcher(ReadyQueue([t("k", 1)], set(), order), {"k": {"key": "k"}}, lambda trial: False,
                                  _leases(store, "me", clock))
    assert searcher.suggest("1") == {"trial": {"key": "k"}}
    searcher.on_trial_complete("1", {"elsewhere": 1})
    for step in (0.0, 60.0):                 # seen, then unchanged for less than the TTL: still held elsewhere
        clock.t += step
        searcher._recheck_elsewhere(now=clock.t + RECHECK_S * 100 + step)
        assert "k" in searcher.elsewhere
    clock.t += 61.0
    searcher._recheck_elsewhere(now=clock.t + RECHECK_S * 1000)
    token = other.current("k").token
    assert searcher.suggest("2") == {"trial": {"key": "k"}, "takeover": token}
    worker = _leases(store, "me")            # the worker's own reader sees the lease for the first time
    assert not worker.claim("k") and worker.claim("k", token)
