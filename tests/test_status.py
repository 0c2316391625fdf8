"""The per-method breakdown of `ddray status`: pure counting over a plan and stored rows."""

from __future__ import annotations

import copy


from ddray.markdown import markdown_table
from ddray.status import breakdown, trial_cell
from tests.conftest import TINY_SPEC, planned


def _row(trial, wall_s):
    c = trial.config
    method = c.method.name if getattr(c, "method", None) else None
    arm = getattr(c, "arm", None)
    return {"key": trial.key, "stage": trial.stage, "method": None if arm in ("rdm", "full") else method,
            "arm": arm, "ipc": getattr(c, "ipc", None), "wall_s": wall_s}


def test_breakdown_counts_done_errored_pending_and_the_time_left():
    spec = copy.deepcopy(TINY_SPEC)
    spec["ipc"], spec["seeds"] = [1, 10], [0, 1]
    plan = planned(spec)
    evals = [t for t in plan.stage("eval") if trial_cell(t) == ("herding", 1)]
    assert len(evals) >= 2
    stored = [_row(evals[0], 30.0)] + [_row(t, 5.0) for t in plan.stage("full")]
    unplanned = {"key": "0" * 16, "stage": "synth", "method": "dm", "arm": None, "ipc": 1.0, "wall_s": float("nan")}
    cells = {(c.stage, c.who, c.ipc): c for c in breakdown(plan.trials, stored + [unplanned], [evals[1].key])}

    herding = cells["eval", "herding", 1]
    assert (herding.done, herding.errored, herding.pending) == (1, 1, len(evals) - 2)
    assert herding.mean_wall_s == 30.0 and herding.left_s == 30.0 * (len(evals) - 1)
    full = cells["full", "full", None]
    assert full.done == len(plan.stage("full")) and full.pending == 0 and full.left_s == 0.0
    # an unplanned stored row (a store shared with a wider spec) is counted, a NaN wall time is not timed
    assert cells["synth", "dm", 1].done == 1 and cells["synth", "dm", 1].mean_wall_s is None
    # nothing stored in a cell: no mean, so no estimate rather than a wrong one
    assert cells["eval", "rdm", 10].mean_wall_s is None and cells["eval", "rdm", 10].left_s is None
    # every planned trial is in exactly one cell
    n_planned = sum(c.done + c.errored + c.pending for c in cells.values()) - 1
    assert n_planned == len(plan.trials)
    assert {c.stage for c in cells.values()} <= {"full", "synth", "search", "eval"}
    assert [s for s, *_ in cells] == sorted((s for s, *_ in cells), key=["full", "synth", "search", "eval"].index)


def test_trial_cell_names_shared_arms_by_arm_and_the_rest_by_method():
    plan = planned(TINY_SPEC)
    for t in plan.trials:
        arm = getattr(t.config, "arm", None)
        expected = ("full", None) if t.stage == "full" else ("rdm", 1) if arm == "rdm" else (t.config.method.name, 1)
        assert trial_cell(t) == expected
    assert {trial_cell(t) for t in plan.trials} == {("full", None), ("rdm", 1), ("random", 1), ("herding", 1)}


def test_markdown_table_right_aligns_numbers_and_escapes_cells():
    """The one Markdown table of `ddray status --format md` and the report."""
    assert markdown_table(("stage", "done"), [("eval", 3), ("a|b", "x\ny")], left=1) == (
        "| stage | done |\n|---|---:|\n| eval | 3 |\n| a\\|b | x y |")
    assert markdown_table(("a", "b"), []) == "| a | b |\n|---|---|"
