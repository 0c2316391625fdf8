"""Provenance without Ray: digests remembered per file version, one trial per spelling, row layouts
that evolve, a stored config of another version named, and rows of two engines kept apart.
(tests/test_provenance_store.py checks the same promises end to end on real stores.)"""

from __future__ import annotations

import copy
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPO, TINY_SPEC, planned
from ddray.errors import InputError
from ddray.store.rows import verify_row
from ddray.store.schema import ROW_SCHEMA

FIXTURES = REPO / "tests" / "fixtures" / "rows"


# ------------------------------------------------------------------------------------ digests

def test_a_file_is_hashed_once_per_version(tmp_path):
    from ddray.digests import file_digest

    f = tmp_path / "images.pt"
    f.write_bytes(b"a" * 1000)
    first = file_digest(f)
    memo = next((Path(os.environ["DDRAY_CACHE_DIR"]) / ".digests").glob("*.json"))
    for m in (Path(os.environ["DDRAY_CACHE_DIR"]) / ".digests").glob("*.json"):
        if json.loads(m.read_text())["path"] == str(f.resolve()):
            memo = m
    forged = json.loads(memo.read_text()) | {"digest": "remembered"}
    memo.write_text(json.dumps(forged))
    assert file_digest(f) == "remembered"          # same (path, size, mtime, inode): not read again
    f.write_bytes(b"b" * 1000)                      # rewritten in place: same size, new mtime
    os.utime(f, ns=(1, 1))
    assert file_digest(f) not in ("remembered", first)


def test_a_folder_digest_is_its_content_wherever_it_is(tmp_path):
    from ddray.digests import path_digest

    a = tmp_path / "a" / "ipc1"
    a.mkdir(parents=True)
    (a / "images.pt").write_bytes(b"pixels")
    (a / "labels.pt").write_bytes(b"labels")
    b = tmp_path / "elsewhere" / "copy"
    b.mkdir(parents=True)
    for p in a.iterdir():
        (b / p.name).write_bytes(p.read_bytes())
    assert path_digest(a) == path_digest(b) == path_digest(f"{a}/")
    (b / "images.pt").write_bytes(b"pixelz")
    assert path_digest(a) != path_digest(b)


# ------------------------------------------------------------------------------ one spelling, one trial

def _files_spec(files: str, **params) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"mine": {"files": files, **params}, "dm": {"iterations": 100, "batch_real": 32}}
    spec["teachers"] = {"arch": "convnet-d1-w16", "checkpoint": files.rstrip("/") + "/teacher.pt"}
    return spec


def test_paths_spelled_relative_absolute_or_with_a_slash_are_one_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keys = {frozenset(planned(_files_spec(p)).keys()) for p in ("sets/ipc{ipc}", f"{tmp_path}/sets/ipc{{ipc}}",
                                                                  "sets/ipc{ipc}/", "./sets/ipc{ipc}")}
    assert len(keys) == 1


def test_numbers_and_defaults_spelled_two_ways_are_one_trial():
    base = planned(_files_spec("/sets/ipc{ipc}")).keys()
    spelled = _files_spec("/sets/ipc{ipc}")
    spelled["methods"]["dm"] = {"iterations": 100.0, "batch_real": 32, "lr_img": 1}   # lr_img's default is 1.0
    assert planned(spelled).keys() == base
    other = _files_spec("/sets/ipc{ipc}")
    other["methods"]["dm"]["iterations"] = 101
    assert planned(other).keys() != base


def test_dataset_options_spelled_two_ways_are_one_trial():
    def spec(size):
        s = copy.deepcopy(TINY_SPEC)
        s["datasets"] = {"imgs": {"loader": "imagefolder", "root": "/nowhere", "options": {"image_size": size}}}
        return s

    assert planned(spec(16)).keys() == planned(spec(16.0)).keys() != planned(spec(17)).keys()


# ------------------------------------------------------------------------------------ row layouts

def _rows(layout: str) -> list[Path]:
    return sorted((FIXTURES / layout).glob("*/*.parquet"))


def test_rows_of_layout_1_stay_readable():
    """The committed rows of 2026-12-06 (layout 1, no provenance columns) read as today's layout."""
    files = _rows("v1")
    assert {p.parent.name for p in files} == {"full", "synth", "eval"}
    for p in files:
        table, why = verify_row(p.parent.name, p.name, p.read_bytes())
        assert why is None, (p, why)
        row = table.to_pylist()[0]
        assert table.schema == ROW_SCHEMA and row["schema_version"] == 1 and row["inputs_json"] is None


def test_a_newer_layout_with_extra_columns_is_read_not_quarantined():
    p = _rows("v1")[0]
    table = pq.read_table(p).append_column("from_the_future", pa.array(["x"]))
    table = table.append_column("schema_version", pa.array([9], pa.int64()))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    read, why = verify_row(p.parent.name, p.name, buf.getvalue())
    assert why is None and read.to_pylist()[0]["schema_version"] == 9
    buf = io.BytesIO()                         # but a row without its identity columns is still no row
    pq.write_table(pq.read_table(p).drop_columns(["config_json"]), buf)
    assert verify_row(p.parent.name, p.name, buf.getvalue())[1] == "not a ddray row: missing column(s) config_json"


def test_a_stored_config_this_version_cannot_read_is_a_named_message():
    from ddray.stored import conflicts

    row = pq.read_table(_rows("v1")[-1]).to_pylist()[0]
    config = json.loads(row["config_json"]) | {"knob_of_a_newer_ddray": 1}
    with pytest.raises(InputError, match="cannot read .*knob_of_a_newer_ddray.*another ddray version"):
        conflicts(planned(TINY_SPEC).trials, [json.dumps(config)])


# ------------------------------------------------------------------------------------ versions

def test_rows_record_the_package_version_the_engine_and_the_hardware():
    from importlib.metadata import version

    import torch

    from ddray.engine import ENGINE_VERSION
    from ddray.run.execute import hardware_name, make_row
    from ddray.run.outcome import Outcome

    trial = planned(TINY_SPEC).stage("eval")[0]
    row = make_row(trial, Outcome(top1=0.5), 1.0, "cpu", {"data": "abc"}, hardware_name(torch.device("cpu")))
    assert row.ddray_version == version("ddray") and row.engine_version == ENGINE_VERSION
    assert row.hardware and row.hardware == hardware_name(torch.device("cpu")) and row.schema_version == 2
    assert json.loads(row.inputs_json) == {"data": "abc"}


def test_rows_of_two_engine_versions_are_reported_apart():
    import pandas as pd

    from ddray.report import build_report
    from benchmarks.synthetic_rows import synthetic_rows

    rows = synthetic_rows()
    one = build_report(rows, n_boot=20)
    rows = rows.copy()
    rows["engine_version"] = ["2" if i % 2 else None for i in range(len(rows))]
    two = build_report(rows, n_boot=20)
    assert not any("engine" in w for w in one.warnings)
    assert any("engine versions 1, 2" in w for w in two.warnings)
    assert {t.split(":")[-1] for t in two.tracks} == {"engine=1", "engine=2"}
    assert set(pd.DataFrame(two.provenance)["engine_versions"].map(len)) <= {1, 2}

    from ddray.report.provenance import provenance_html
    from ddray.report.render import report_json

    cells = report_json(two)["provenance"]
    assert cells and all({"keys", "engine_versions", "inputs", "hardware", "last_finished"} <= set(c) for c in cells)
    assert provenance_html(cells).count("<tr>") == len(cells) + 1


# ------------------------------------------------------------------------------------ teachers, audit

def test_the_teacher_cache_is_keyed_by_content(tmp_path):
    """Two stores holding different weights under one full-data key never get each other's copy."""
    from ddray.run.teacher_cache import teacher_file
    from ddray.store import Store

    key = "0123456789abcdef"
    a, b = Store(str(tmp_path / "a")), Store(str(tmp_path / "b"))
    a.put_artifact("teachers", key, "weights.pt", b"weights of store a")
    b.put_artifact("teachers", key, "weights.pt", b"weights of store b")
    assert teacher_file(a, key).read_bytes() == b"weights of store a"
    assert teacher_file(b, key).read_bytes() == b"weights of store b"


@pytest.mark.slow
def test_an_audit_of_rows_just_written_is_exact(tmp_path):
    """Rows written on this machine re-run bit-exact on CPU, with matching inputs and hardware."""
    import torch
    import yaml

    from ddray.audit import audit_store, audit_text
    from ddray.run.execute import execute
    from ddray.run.worker_env import WorkerEnv
    from ddray.store import Store

    spec = {**copy.deepcopy(TINY_SPEC), "overrides": {"epochs": 2, "batch_size": 16},
            "arms": [{"arm": "rdm", "labels": "hard", "aug": True}]}
    store = Store(str(tmp_path / "store"))
    store.save_spec(yaml.safe_dump(spec))
    for t in planned(spec).trials:
        store.write_row(execute(t, WorkerEnv(store=store.loc.root), torch.device("cpu")))
    before = {p: p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()}
    (result,) = audit_store(store.uri, sample=5, scratch=str(tmp_path / "scratch"))
    assert result.exact and result.reproduces, audit_text([result])
    assert result.inputs == "match" and result.hardware.startswith("same") and result.engine.startswith("same")
    assert {p: p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()} == before   # only read


def test_plan_needs_no_data_and_names_trials_whose_files_are_absent(tmp_path):
    from typer.testing import CliRunner

    from conftest import write_spec
    from ddray.cli import app

    spec = _files_spec(str(tmp_path / "not-here" / "ipc{ipc}"))
    path = write_spec(tmp_path / "spec.yaml", spec)
    result = CliRunner().invoke(app, ["plan", str(path), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output
    assert "cannot be resolved yet" in " ".join(result.output.split()) and "not-here" in result.output
    listed = CliRunner().invoke(app, ["plan", str(path), "--store", str(tmp_path / "store"), "--json"])
    trials = json.loads(listed.output)["trials"]
    assert any(t["absent_inputs"] for t in trials) and not all(t["absent_inputs"] for t in trials)
