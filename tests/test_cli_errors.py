"""Bad input stops `ddray run` before any work starts: exit 2 and one clear line, no traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from ddray.cli import app
from tests.conftest import TINY_SPEC, write_spec

runner = CliRunner()


def test_unwritable_store_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    result = runner.invoke(app, ["run", str(spec), "--store", str(blocker / "store")])
    assert result.exit_code == 2, result.output
    assert "store" in result.output and "not writable" in result.output and "Traceback" not in result.output


def test_dead_cluster_address_exit_2(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    result = runner.invoke(app, ["run", str(spec), "--store", str(tmp_path / "st"), "--address", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "address" in result.output and "does not answer" in result.output
    assert not (tmp_path / "st").exists()


def test_no_store_exit_2(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    result = runner.invoke(app, ["run", str(spec)])
    assert result.exit_code == 2 and "store" in result.output


def test_different_benchmark_in_same_store_refused(tmp_path):
    import copy

    store = tmp_path / "st"
    store.mkdir()
    other = copy.deepcopy(TINY_SPEC)
    other["name"] = "other"
    other["overrides"] = {"epochs": 9, "batch_size": 16}
    (store / "spec.yaml").write_text(__import__("yaml").safe_dump(other))
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    result = runner.invoke(app, ["run", str(spec), "--store", str(store)])
    assert result.exit_code == 2 and "differ" in result.output


def test_bad_only_exit_2(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", TINY_SPEC)
    result = runner.invoke(app, ["plan", str(spec), "--only", "colour=red"])
    assert result.exit_code == 2 and "--only" in result.output
