"""Every write or read failure named where the user looks: the trial's stored error (with the
path), `ddray status`, and no temporary file left behind. A full disk cannot be made without
mount privileges, so ENOSPC is injected at the one syscall that meets it (fsync of the row's
temp file); everything else is a real store on a real folder."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from typer.testing import CliRunner

import ddray.run.trainable as trainable
from ddray.cli import app
from ddray.store import Store
from ddray.store.fs import atomic_write_local
from tests.conftest import TINY_SPEC, planned

runner = CliRunner()


def _full_disk_under(folder: str, monkeypatch) -> None:
    """fsync of any file written under `folder` fails with ENOSPC, as on a full disk."""
    fsync = os.fsync

    def fsync_or_full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(folder):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_or_full)


def test_a_failed_write_names_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    _full_disk_under(str(tmp_path / "rows"), monkeypatch)
    target = tmp_path / "rows" / "k.parquet"
    with pytest.raises(OSError) as e:
        atomic_write_local(target, b"x" * 860_000)
    assert e.value.errno == errno.ENOSPC and str(target) in str(e.value)
    assert list((tmp_path / "rows").iterdir()) == []           # the partial temp file went


def _run_one(tmp_path, monkeypatch, store: Store):
    trial = planned(TINY_SPEC).trials[0]
    monkeypatch.setattr(trainable.tune, "report", lambda r: None)

    class Row:
        stage, key, top1 = trial.stage, trial.key, 0.5

        def record(self):
            return {"key": trial.key}

    monkeypatch.setattr(trainable, "execute", lambda *a, **k: Row())
    with pytest.raises(OSError):
        trainable.run_trial({"trial": {**trial.to_dict(), "gpu": 0}, "env": {"store": store.loc.root}, "owner": "me"})
    return trial


def test_a_full_disk_at_the_row_write_is_the_trials_stored_error_shown_by_status(tmp_path, monkeypatch):
    import yaml

    store = Store(str(tmp_path / "store"))
    store.save_spec(yaml.safe_dump(TINY_SPEC))
    _full_disk_under(str(tmp_path / "store" / "rows"), monkeypatch)
    monkeypatch.setattr(Store, "write_row", lambda self, row: _write_row_bytes(self, row))
    trial = _run_one(tmp_path, monkeypatch, store)
    err = store.errors_of([trial.key])[trial.key]
    assert "No space left on device" in err["exception"] and f"rows/{trial.stage}/{trial.key}.parquet" in err["exception"]
    assert not list((tmp_path / "store" / "rows").rglob(".tmp-*"))
    out = runner.invoke(app, ["status", str(tmp_path / "store")], env={"COLUMNS": "300"}).output
    assert f"({trial.key}, 1 attempt(s)): OSError: [Errno 28] No space left on device" in out


def _write_row_bytes(store: Store, row) -> bool:
    from ddray.store.fs import write_bytes

    return write_bytes(store.loc, store.row_path(row.stage, row.key), b"PAR1" * 1000, exclusive=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes any folder")
def test_a_rows_folder_without_permission_is_the_trials_stored_error(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "store"))
    trial = planned(TINY_SPEC).trials[0]
    rows = tmp_path / "store" / "rows" / trial.stage
    rows.mkdir(parents=True)
    rows.chmod(0)
    try:
        _run_one(tmp_path, monkeypatch, store)
    finally:
        rows.chmod(stat.S_IRWXU)
    assert "Permission denied" in store.errors_of([trial.key])[trial.key]["exception"]


def test_a_folder_under_a_rows_name_is_a_bad_row_named_as_such(tmp_path):
    store = Store(str(tmp_path / "store"))
    (tmp_path / "store" / "rows" / "eval" / f"{'a' * 16}.parquet").mkdir(parents=True)
    (bad,) = store.scan().bad
    assert bad.reason == "is a folder, not a file"


def test_an_unreadable_row_is_called_permission_denied(tmp_path, monkeypatch):
    import ddray.store.scan as store_mod  # the one reader of row files

    store = Store(str(tmp_path / "store"))
    (tmp_path / "store" / "rows" / "eval").mkdir(parents=True)
    (tmp_path / "store" / "rows" / "eval" / f"{'a' * 16}.parquet").write_bytes(b"PAR1")

    def refused(loc, path):  # what a row file of another user with mode 600 gives (root reads anything)
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(store_mod, "read_bytes", refused)
    (bad,) = store.scan().bad
    assert bad.reason == "permission denied"
