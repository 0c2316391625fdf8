"""`ddray store migrate`: rows an earlier version keyed with file paths (a `files` set, a loaded
teacher checkpoint) and the rows naming their keys are rekeyed by today's rule, with their
artifacts and errors, once; nothing else moves. No Ray: rows are written with the store's writer."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from conftest import REPO, TINY_SPEC, planned
from ddray.cli import app
from ddray.keys import KEY_LENGTH, canonical_json, config_key
from ddray.run.execute import make_row
from ddray.run.outcome import Outcome
from ddray.store import Row, Store
from ddray.store.migrate import rekey
from ddray.trials import STAGES

runner = CliRunner()


def _spec() -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec["methods"] = {"mine": {"files": "/sets/ipc{ipc}"}, "rded": {}}
    spec["teachers"] = {"arch": "convnet-d1-w16", "checkpoint": "/sets/teacher.pt"}
    return spec


def _old(data: dict, renamed: dict[str, str]) -> dict:
    """A config dict as an earlier version stored it: its dependencies under their old keys."""
    out = dict(data)
    if out.get("synth"):
        out["synth"] = renamed.get(out["synth"], out["synth"])
    if out.get("teachers"):
        out["teachers"] = [{**t, "key": renamed.get(t["key"], t["key"])} if t.get("key") else t for t in out["teachers"]]
    return out


def _old_store(uri: str) -> tuple[dict[str, dict], dict[str, str]]:
    """A store of the spec's trials keyed the old way (hash of the raw text, paths and old dependency
    keys in it); returns today's records by key, and the old key of each trial."""
    plan = planned(_spec())
    st = Store(uri)
    today, old_of = {}, {}
    for stage in STAGES:
        for t in (t for t in plan.trials if t.stage == stage):
            rec = make_row(t, Outcome(top1=0.5, top5=0.9, loss=1.0, epochs_run=3), 1.0, "cpu").record()
            today[t.key] = rec
            data = _old(json.loads(rec["config_json"]), old_of)
            text = canonical_json(data)
            old = hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
            old_of[t.key] = old
            cell = config_key({k: v for k, v in data.items() if k not in ("arm", "method", "synth")}) if stage == "eval" else None
            assert st.write_row(Row(**{**rec, "key": old, "config_json": text, "cell": cell}))
    return today, old_of


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_old_keys_are_rekeyed_with_their_dependents_artifacts_and_errors_once(tmp_path):
    uri = str(tmp_path / "store")
    today, old_of = _old_store(uri)
    st = Store(uri)
    synth = next(k for k, r in today.items() if r["stage"] == "synth")
    assert old_of[synth] != synth                                      # the teacher checkpoint's path was in its key
    cascaded = [k for k, r in today.items() if json.loads(r["config_json"]).get("synth") == synth
                and not json.loads(r["config_json"]).get("teachers")]
    assert cascaded and all(old_of[k] != k for k in cascaded)          # no path of its own: only its synth key moved
    st.put_artifact("distilled", old_of[synth], "images.pt", b"pixels")
    (tmp_path / "store" / "errors").mkdir()
    (tmp_path / "store" / "errors" / f"{old_of[synth]}.json").write_text(json.dumps({"key": old_of[synth], "attempts": 2}))
    st.compact()                                                       # an index of the old rows exists
    assert len(st.scan().bad) == sum(old_of[k] != k for k in today) - len(cascaded)  # what `run` would quarantine
    before = _files(tmp_path / "store")

    dry = runner.invoke(app, ["store", "migrate", uri, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would be rekeyed" in dry.output and _files(tmp_path / "store") == before

    res = runner.invoke(app, ["store", "migrate", uri])
    assert res.exit_code == 0, res.output
    moved = sum(old_of[k] != k for k in today)
    assert f"{moved} row(s) rekeyed" in res.output and "synth 1" in res.output

    scan = Store(uri).scan()
    assert not scan.bad and not scan.dropped
    assert {k for ks in scan.keys.values() for k in ks} == set(today)  # exactly the plan's keys
    stored = {r["key"]: r for r in scan.table.to_pylist()}
    for key, rec in today.items():                                     # same content, today's key, config, cell
        assert stored[key] == rec
    assert st.get_artifact("distilled", synth, "images.pt") == b"pixels"
    assert st.get_artifact("distilled", old_of[synth], "images.pt") is None
    assert st.errors_of([synth])[synth]["attempts"] == 2 and not st.errors_of([old_of[synth]])

    after = _files(tmp_path / "store")
    again = runner.invoke(app, ["store", "migrate", uri])
    assert again.exit_code == 0 and "0 row(s) rekeyed" in again.output
    assert _files(tmp_path / "store") == after


def test_a_trained_teachers_new_key_reaches_the_rows_it_teaches():
    rec = next(r for t in planned(_spec()).trials if t.stage == "eval" and t.config.teachers
               for r in [make_row(t, Outcome(top1=0.5), 1.0, "cpu").record()])
    data = json.loads(rec["config_json"]) | {"teachers": [{"arch": "convnet-d1-w16", "key": "b" * 16}]}
    text = canonical_json(data)
    row = {**rec, "key": hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH], "config_json": text, "teacher": "b" * 16}
    assert rekey(row, {}) is None                                      # keyed by today's rule, nothing renamed
    rk = rekey(row, {"b" * 16: "c" * 16})
    assert rk is not None and json.loads(rk.record["config_json"])["teachers"][0]["key"] == "c" * 16
    assert rk.record["teacher"] == "c" * 16 and rk.new not in (row["key"], rec["key"])


def test_the_committed_store_migrates_as_a_no_op(tmp_path):
    dst = tmp_path / "fashion-mnist"
    shutil.copytree(REPO / "docs" / "results" / "fashion-mnist", dst)
    before = _files(dst)
    res = runner.invoke(app, ["store", "migrate", str(dst)])
    assert res.exit_code == 0, res.output
    assert "0 row(s) rekeyed" in res.output and _files(dst) == before


def test_a_folder_that_is_no_store_is_named(tmp_path):
    res = runner.invoke(app, ["store", "migrate", str(tmp_path)])
    assert res.exit_code == 2 and "no ddray store" in res.output
