"""The coverage grid's states, from planned trials against stored rows and stored errors (pure)."""

from __future__ import annotations

import pandas as pd

from ddray.report import build_report, render
from ddray.report.coverage import IDENTITY, coverage, first_line, incomplete_summary
from benchmarks.synthetic_rows import synthetic_rows


def test_complete_partial_errored_and_not_run_cells():
    planned = synthetic_rows(methods=("random", "dm"), soft_methods=(), datasets=("cifar10",), ipcs=(1, 10, 50), seeds=(0, 1, 2))
    stored = planned[planned["ipc"].fillna(1) != 50]
    dm10 = (stored["method"] == "dm") & (stored["ipc"] == 10) & (stored["seed"] == 2) & (stored["stage"] == "eval")
    rnd10 = (stored["method"] == "random") & (stored["ipc"] == 10) & (stored["seed"] == 1) & (stored["stage"] == "eval")
    failed = stored.loc[dm10, "key"].iloc[0]
    errors = {failed: first_line("\n  RuntimeError: CUDA out of memory\nTraceback ...")}
    stored = stored[~dm10 & ~rnd10]
    cov = coverage(planned[list(IDENTITY)], stored, errors).set_index(["method", "ipc"])
    assert cov.loc[("dm", 1), "status"] == "complete" and cov.loc[("dm", 1), "seeds_done"] == 3
    assert cov.loc[("random", 10), ["status", "seeds_done", "seeds_planned"]].tolist() == ["partial", 2, 3]
    assert cov.loc[("dm", 10), ["status", "seeds_errored", "error"]].tolist() == ["errored", 1, "RuntimeError: CUDA out of memory"]
    assert (cov.xs(50, level="ipc")["status"] == "not run").all()
    line = incomplete_summary(cov.reset_index())
    assert line.startswith("incomplete: 4 of 6 planned cells") and "2 not run (IPC 50; dm, random)" in line

    # Scores on fewer seeds than planned say so where they appear.
    rep = build_report(stored, n_boot=5)
    from dataclasses import replace
    text = render(replace(rep, coverage=coverage(planned[list(IDENTITY)], stored, errors)), "md")
    assert "| 2 of 3 |" in text


def test_a_store_without_a_plan_shows_what_it_holds_as_complete():
    rows = synthetic_rows(methods=("dm",), soft_methods=(), datasets=("cifar10",), ipcs=(1,), seeds=(0, 1))
    cov = coverage(pd.DataFrame(columns=list(IDENTITY)), rows, {})
    assert cov["status"].tolist() == ["complete"] and cov["seeds_done"].tolist() == [2]
    assert incomplete_summary(cov) == ""
