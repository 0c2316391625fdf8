"""Driver killed with SIGKILL mid-run with its store on s3:// (a local moto server): nothing
finished is lost, nothing stored is recomputed or rewritten, the rerun completes the plan.

The same kill on a local folder is how `tests/test_quickstart.py` builds its store."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from ddray.cli import app
from ddray.store import Store
from tests.conftest import TINY_SPEC, no_traceback, write_spec
from tests.sigkill import clean_env, kill_then_resume, small_quickstart


# A slice of the small quickstart (`tests.sigkill.small_quickstart`: 2 epochs), with two methods:
# 12 trials in every stage (full-data arm, teacher, syntheses, hard- and soft-label evaluations)
# are enough to kill a run mid-way; the other methods would only make the test longer.
SLICE = ["--only", "seed=0", "--only", "ipc=1", "--only", "method=random,herding"]


@pytest.mark.ray  # runs `ddray run`: not in `make test-fast`
def test_sigkill_s3_store(moto_s3, tmp_path):
    port, creds = moto_s3
    uri = f"s3://ddray/quickstart?endpoint_override=127.0.0.1:{port}&scheme=http"
    kill_then_resume(small_quickstart(tmp_path), uri, SLICE, clean_env(**creds))
    rows = Store(uri).read_rows()
    assert {"full", "synth", "eval"} <= set(rows["stage"])


def test_s3_store_that_refuses_us_exits_2_with_the_reason(moto_s3, tmp_path, monkeypatch):
    """An S3 endpoint that answers 403 (credentials it does not know) is one line naming the URI
    and AWS's reason, not pyarrow's AttributeError traceback."""
    from moto import settings

    port, _ = moto_s3
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks credentials from now on
    uri = f"s3://ddray/refused?endpoint_override=127.0.0.1:{port}&scheme=http"
    t0 = time.monotonic()
    result = CliRunner().invoke(app, ["plan", str(write_spec(tmp_path / "s.yaml", TINY_SPEC)), "--store", uri])
    assert time.monotonic() - t0 < 10
    assert result.exit_code == 2, result.output
    assert f"store: cannot open store '{uri}'" in result.output and "ACCESS_DENIED" in result.output
    assert no_traceback(result), result.exception
