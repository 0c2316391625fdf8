"""The run's ReadyQueue: dependencies first, longest first, dependants of failures held back; the
order trials start in (no Ray)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from ddray.run.schedule import ReadyQueue
from tests.conftest import TINY_SPEC, planned


@dataclass(frozen=True)
class Job:
    """What the queue schedules: a key, its dependencies (and here, the work that orders it)."""

    key: str
    work: int
    deps: tuple[str, ...] = ()


def t(key: str, work: int, *deps: str) -> Job:
    return Job(key, work, tuple(deps))


def order(job: Job) -> int:
    return -job.work  # most work first


def drain(q: ReadyQueue) -> list[str]:
    out = []
    while (nxt := q.pop()) is not None:
        out.append(nxt.key)
    return out


def test_ready_trials_come_longest_first_ties_in_plan_order():
    q = ReadyQueue([t("a", 1), t("b", 5), t("c", 5), t("d", 3)], set(), order)
    assert drain(q) == ["b", "c", "d", "a"]
    assert not q.finished and q.in_flight == {"a", "b", "c", "d"}


def test_a_dependant_is_released_when_its_last_dependency_completes():
    q = ReadyQueue([t("full", 9), t("syn", 5), t("eval", 1, "full", "syn")], set(), order)
    assert drain(q) == ["full", "syn"]
    q.complete("syn")
    assert q.pop() is None and not q.finished          # still waiting for the full-data trial
    q.complete("full")
    assert q.pop().key == "eval"
    q.complete("eval")
    assert q.finished and q.unstarted() == []


def test_stored_dependencies_count_as_done():
    q = ReadyQueue([t("eval", 1, "syn-stored")], {"syn-stored"}, order)
    assert drain(q) == ["eval"]


def test_a_failure_holds_back_its_dependants_transitively():
    trials = [t("syn", 5), t("other", 4), t("eval", 1, "syn"), t("tuned", 1, "eval"), t("ok", 1, "other")]
    q = ReadyQueue(trials, set(), order)
    assert drain(q) == ["syn", "other"]
    q.fail("syn")
    q.complete("other")
    assert drain(q) == ["ok"]
    q.complete("ok")
    assert q.finished and q.failed == {"syn"}
    assert q.unstarted() == ["eval", "tuned"]


def test_a_dependency_neither_stored_nor_planned_blocks():
    q = ReadyQueue([t("eval", 1, "missing"), t("x", 1)], set(), order)
    assert drain(q) == ["x"]
    q.complete("x")
    assert q.finished and q.unstarted() == ["eval"]


def test_trials_start_longest_first():
    """The Searcher hands out ready trials full-data first, then synthesis, then evaluations by epochs x IPC."""
    from ddray.run.runner import expected_work

    spec = copy.deepcopy(TINY_SPEC)
    spec["ipc"] = [1, 10]
    plan = planned(spec)
    ordered = sorted(plan.trials, key=expected_work)
    stages = [t.stage for t in ordered]
    assert stages == sorted(stages, key=["full", "synth", "eval"].index)
    evals = [t for t in ordered if t.stage == "eval"]
    ipcs = [t.config.ipc for t in evals]
    assert ipcs == sorted(ipcs, reverse=True) and ipcs[0] == 10 and ipcs[-1] == 1
    # ties keep the plan's order (a stable sort), so the start order stays reproducible
    assert [t.key for t in evals if t.config.ipc == 10] == [t.key for t in plan.stage("eval") if t.config.ipc == 10]
