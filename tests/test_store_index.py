"""The compacted row index (`store/segments.py`, `store/scan.py`): rows stay the truth, the index only
saves reading them. Real Parquet rows written with the store's own writer (planned keys), real
segment files, a crash made by failing the manifest switch, and two compactions interleaved by a
barrier between their threads (no sleeps)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from ddray.run.execute import make_row
from ddray.run.outcome import Outcome
from ddray.store import Store, segments
from ddray.store.scan import scan_rows
from ddray.store.schema import ROW_SCHEMA
from tests.conftest import REPO, TINY_SPEC, planned

FASHION = REPO / "docs" / "results" / "fashion-mnist"
SPEC = {**TINY_SPEC, "seeds": [0, 1, 2]}


def _write(store: Store, trials) -> None:
    for i, t in enumerate(trials):
        assert store.write_row(make_row(t, Outcome(top1=0.1 + i / 100), 1.0, "cpu (test)"))


def _rows(scan) -> list[dict]:
    """A scan's rows in key order (segments and files may list them in different orders)."""
    return sorted(scan.table.to_pylist(), key=lambda r: r["key"])


def _plain(root: Path, tmp_path: Path) -> list[dict]:
    """What the store reads as without any index: a copy without index/."""
    copy = tmp_path / "plain"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(segments.INDEX))
    return _rows(Store(str(copy)).scan())


@pytest.fixture
def store(tmp_path) -> tuple[Store, list]:
    trials = list(planned(SPEC).trials)
    st = Store(str(tmp_path / "store"))
    _write(st, trials[:-2])
    return st, trials


def test_a_compacted_store_reads_its_rows_from_the_index_and_the_same_as_without(store, tmp_path):
    st, trials = store
    done = st.compact()
    assert done.wrote is not None and done.wrote.rows == len(trials) - 2
    scan = st.scan()
    assert scan.indexed == len(trials) - 2 and not scan.bad and not scan.dropped
    assert _rows(scan) == _plain(st.loc.root, tmp_path)
    assert st.compact().wrote is None  # nothing new: the index is current


def test_a_row_written_after_the_last_compaction_is_seen_and_folded_in_next(store):
    st, trials = store
    st.compact()
    _write(st, trials[-2:])
    scan = st.scan()
    assert {r["key"] for r in scan.table.to_pylist()} == {t.key for t in trials}
    assert scan.indexed == len(trials) - 2
    again = st.compact()
    assert not again.merged and len(segments.read_manifest(st.loc)) == 2
    assert st.scan().indexed == len(trials)


def test_a_row_file_damaged_after_compaction_is_caught_and_the_next_compaction_drops_it(store, tmp_path):
    st, trials = store
    st.compact()
    victim = Path(st.row_path(trials[0].stage, trials[0].key))
    victim.write_bytes(victim.read_bytes()[:100])  # truncated in place: the file wins over its entry
    scan = st.scan()
    assert [b.key for b in scan.bad] == [trials[0].key]
    assert trials[0].key not in {r["key"] for r in scan.table.to_pylist()}
    assert _rows(scan) == _plain(st.loc.root, tmp_path)
    merged = st.compact()
    assert merged.merged and merged.wrote.rows == len(trials) - 3
    victim.unlink()  # quarantined, say: gone from the index too
    assert st.scan().dropped == 0 and len(st.scan().table) == len(trials) - 3


def test_a_crash_during_compaction_loses_nothing_and_every_reader_agrees(store, tmp_path, monkeypatch):
    st, trials = store
    st.compact()
    _write(st, trials[-2:])

    def killed(*_a, **_k):
        raise KeyboardInterrupt("killed between writing the segment and switching the manifest")

    monkeypatch.setattr("ddray.store.scan.write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        st.compact()
    monkeypatch.undo()
    index = Path(st.loc.root) / segments.INDEX
    assert len(list(index.glob("seg-*.parquet"))) == 2  # the orphan is there, the manifest names one
    (index / "seg-torn.parquet").write_bytes(b"PAR1 half a segment")  # and a torn one, never named
    assert _rows(st.scan()) == _plain(st.loc.root, tmp_path) and len(st.scan().table) == len(trials)
    # A manifest naming a torn segment (a copy cut short) is no worse: its rows come from their files.
    ref = segments.read_manifest(st.loc)[0]
    seg = index / ref.name
    seg.write_bytes(seg.read_bytes()[: ref.bytes // 2])
    scan = st.scan()
    assert scan.dropped == 1 and scan.indexed == 0 and _rows(scan) == _plain(st.loc.root, tmp_path)
    st.compact(now=1e12)  # merges, and collects the orphans once old enough
    assert sorted(p.name for p in index.glob("seg-*")) == [segments.read_manifest(st.loc)[0].name]
    assert st.scan().indexed == len(trials)


def test_two_compactions_at_once_leave_one_consistent_index(store, tmp_path, monkeypatch):
    st, trials = store
    st.compact()
    _write(st, trials[-2:])
    both_wrote = threading.Barrier(2)
    switch = segments.write_manifest

    def after_both_segments(loc, refs):  # each has read the old manifest and written its own segment
        both_wrote.wait(timeout=30)
        switch(loc, refs)

    monkeypatch.setattr("ddray.store.scan.write_manifest", after_both_segments)
    results = []
    threads = [threading.Thread(target=lambda: results.append(Store(st.uri).compact())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and all(r.wrote is not None for r in results)
    refs = segments.read_manifest(st.loc)
    assert refs[-1] in {r.wrote for r in results} and len(refs) == 2
    scan = st.scan()
    assert scan.indexed == len(trials) and not scan.dropped
    assert _rows(scan) == _plain(st.loc.root, tmp_path)


def test_the_committed_fashion_mnist_store_reads_the_same_with_or_without_segments(tmp_path):
    root = tmp_path / "fashion"
    shutil.copytree(FASHION, root)
    before = Store(str(root)).scan()
    Store(str(root)).compact()
    after = Store(str(root)).scan()
    assert after.indexed == before.table.num_rows == 184 and not after.bad and not before.bad
    assert _rows(after) == _rows(before)


def test_pyarrow_dataset_reads_the_whole_store_as_one_table(store):
    st, trials = store
    st.compact()
    _write(st, trials[-2:])
    table = pads.dataset(st.dataset_files(), filesystem=st.loc.fs, format="parquet", schema=ROW_SCHEMA).to_table()
    assert sorted(table.column("key").to_pylist()) == sorted(t.key for t in trials)


def test_s3_store_reads_from_its_index_and_sees_new_rows(moto_s3, tmp_path):
    port, _ = moto_s3
    uri = f"s3://ddray/index-{tmp_path.name}?endpoint_override=http://127.0.0.1:{port}&scheme=http"
    trials = list(planned(SPEC).trials)
    st = Store(uri)
    _write(st, trials[:-1])
    st.compact()
    _write(st, trials[-1:])
    scan = scan_rows(Store(uri).loc)
    assert scan.indexed == len(trials) - 1 and len(scan.table) == len(trials) and not scan.bad


def test_store_compact_command_indexes_a_store_and_refuses_a_folder_that_is_none(store, tmp_path):
    from typer.testing import CliRunner

    from ddray.cli import app

    st, trials = store
    done = CliRunner().invoke(app, ["store", "compact", st.uri])
    assert done.exit_code == 0, done.output
    assert f"{len(trials) - 2} rows indexed" in done.output and st.scan().indexed == len(trials) - 2
    assert "index is current" in CliRunner().invoke(app, ["store", "compact", st.uri]).output
    none = CliRunner().invoke(app, ["store", "compact", str(tmp_path / "nothing")])
    assert none.exit_code == 2 and "no ddray store" in none.output


def test_a_running_driver_compacts_every_n_finished_trials_and_at_its_end(store):
    from ddray.run.compactor import Compactor

    st, trials = store
    compactor = Compactor(st, every=2)
    compactor.on_trial_complete(0, [], None)
    assert compactor.thread is None  # one finished trial: not yet
    compactor.on_trial_complete(1, [], None)
    compactor.thread.join()
    assert [r.rows for r in segments.read_manifest(st.loc)] == [len(trials) - 2]
    _write(st, trials[-2:])
    done = compactor.finish()  # the run's end: what is stored now, folded in
    assert [r.rows for r in segments.read_manifest(st.loc)] == [len(trials) - 2, 2]
    assert {k for keys in done.keys.values() for k in keys} == {t.key for t in trials}
