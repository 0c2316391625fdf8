"""Progress within long trials: rate-limited epoch reports, and the bar counting them as fractions."""

from __future__ import annotations

import io

from ray.tune.experiment import Trial
from rich.console import Console

from ddray.run.progress import ProgressCallback
from ddray.run.trainable import epoch_progress


def test_epoch_reports_are_rate_limited_and_say_how_far():
    sent = []
    on_epoch = epoch_progress(100, every_s=0.0, report=sent.append)
    for e in (1, 2, 3):
        on_epoch(e, {})
    assert [r["epoch"] for r in sent] == [1, 2, 3] and all(r["epochs"] == 100 and r["stored"] == 0 for r in sent)
    quiet = []
    on_epoch = epoch_progress(100, every_s=3600.0, report=quiet.append)
    for e in range(1, 50):
        on_epoch(e, {})
    assert quiet == []                                    # within the interval: no round trips
    nothing = []
    epoch_progress(None, every_s=0.0, report=nothing.append)(1, {})
    assert nothing == []                                  # a synthesis has no epochs to report


def _trial(trial_id: str) -> Trial:
    """A real Tune trial object as the callbacks get it (`stub`: its trainable is not looked up)."""
    return Trial("ddray_trial", trial_id=trial_id, stub=True,
                 config={"trial": {"key": f"key-{trial_id}", "label": f"random/digits/s{trial_id}"}})


def test_bar_counts_running_epochs_as_fractions_of_a_trial():
    out = io.StringIO()
    bar = ProgressCallback(total=4, done=1, console=Console(file=out), cluster_view=None,
                           describe=lambda key: f"RuntimeError: {key} broke")
    a, b = _trial("a"), _trial("b")
    for t in (a, b):
        bar.on_trial_start(0, [], t)
    bar.on_trial_result(0, [], a, {"stored": 0, "epoch": 250, "epochs": 1000})
    bar.on_trial_result(0, [], b, {"stored": 0, "epoch": 5, "epochs": 10})
    assert bar.progress.tasks[0].completed == 1.75
    bar.on_trial_result(0, [], a, {"stored": 1, "top1": 0.5})   # the final result is no fraction
    bar.on_trial_complete(0, [], a)
    bar.on_trial_error(0, [], b)
    assert bar.progress.tasks[0].completed == 2 and bar.partial == {}
    assert "failed random/digits/sb (key-b): RuntimeError: key-b broke" in out.getvalue()   # one line per failure
