"""Golden numbers: a fixed tiny CPU trial must give the numbers recorded for this ENGINE_VERSION.

Every row records `ddray.engine.ENGINE_VERSION`, and the report never averages rows of two engine
versions; that promise is only as good as the discipline of bumping it. So a change that moves
these numbers (training loop, augmentation, losses, data order, models, defaults) fails here until
ENGINE_VERSION is bumped and the numbers are recorded again:

    DDRAY_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_numbers.py

Accuracy is compared exactly (a count of test images); the loss to 1e-5 relative, so a machine
whose float summation order differs in the last bits does not fail while a real change does.
"""

from __future__ import annotations

import copy
import json
import os

import pytest
import torch

from conftest import REPO, TINY_SPEC, planned
from ddray.engine import ENGINE_VERSION

GOLDEN = REPO / "tests" / "fixtures" / "golden-numbers.json"
SPEC = {**copy.deepcopy(TINY_SPEC), "name": "golden", "overrides": {"epochs": 2, "batch_size": 16},
        "arms": [{"arm": "rdm", "labels": "hard", "aug": False}, {"arm": "rdm", "labels": "hard", "aug": True}]}


def _numbers(tmp_path) -> dict[str, dict[str, float]]:
    from ddray.run.execute import execute
    from ddray.run.worker_env import WorkerEnv

    out = {}
    for t in planned(SPEC).stage("eval"):
        row = execute(t, WorkerEnv(store=str(tmp_path / "store")), torch.device("cpu"))
        out[t.label] = {"top1": row.top1, "loss": row.loss}
    return out


@pytest.mark.slow
def test_tiny_trial_numbers_match_this_engine_version(tmp_path):
    numbers = _numbers(tmp_path)
    if os.environ.get("DDRAY_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"engine_version": ENGINE_VERSION, "trials": numbers}, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["engine_version"] == ENGINE_VERSION, (
        f"ENGINE_VERSION is {ENGINE_VERSION} but the golden numbers are of {golden['engine_version']}: record them "
        "again (DDRAY_UPDATE_GOLDEN=1)")
    assert set(numbers) == set(golden["trials"])
    for label, got in numbers.items():
        want = golden["trials"][label]
        assert got["top1"] == want["top1"], (
            f"{label}: top1 {got['top1']} != {want['top1']} under engine {ENGINE_VERSION}: a change moved the "
            "numbers; bump ddray.engine.ENGINE_VERSION and record them again")
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5), f"{label}: loss moved; bump ENGINE_VERSION"
