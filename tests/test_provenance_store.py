"""Provenance on real stores (local and the S3 test server), as a hostile user would change inputs:
a files set re-distilled in place, a teacher fine-tuned into the same file, a data root pointed at
another tree, a path respelled or moved, and rows written by an older layout (docs/reliability.md)."""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from conftest import REPO, TINY_SPEC
from ddray.run import run_plan
from ddray.run.runner import check_store_compat
from ddray.store import Store
from imagenet_files import jpeg
from tests.test_store_integrity import ray_local  # noqa: F401 — one local Ray for this module

pytestmark = pytest.mark.ray

HARD = [{"arm": "syn", "labels": "hard", "aug": False}]


@pytest.fixture(params=["local", "s3"])
def uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    port, _ = request.getfixturevalue("moto_s3")
    return f"s3://ddray/provenance-{tmp_path.name}?endpoint_override=127.0.0.1:{port}&scheme=http"


def _run(spec: dict, uri: str):
    """`ddray run` as the CLI does it: the same-benchmark check, then the run."""
    import yaml

    from ddray.plan import make_plan
    from ddray.spec import parse_spec
    from ddray.spec_check import resolve_methods

    s = resolve_methods(parse_spec(spec))
    text = yaml.safe_dump(spec, sort_keys=False)
    store = Store(uri)
    plan = make_plan(s)
    check_store_compat(store, text, plan)
    store.save_spec(text)
    return run_plan(s, plan, store, progress=False)


def _spec(**kw) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    spec.update(name="prov", overrides={"epochs": 2, "batch_size": 16}, **kw)
    return spec


def _write_set(folder: Path, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(torch.randn(10, 1, 8, 8, generator=g), folder / "images.pt")
    torch.save(torch.arange(10), folder / "labels.pt")


def _rows(uri: str) -> list[dict]:
    return Store(uri).read_table().to_pylist()


def test_a_files_set_replaced_in_place_is_recomputed_and_a_moved_one_is_not(ray_local, uri, tmp_path, monkeypatch):
    """Items 1 and 6: content decides, not the path's spelling."""
    monkeypatch.chdir(tmp_path)
    _write_set(tmp_path / "sets" / "ipc1", seed=0)
    first = _run(_spec(methods={"mine": {"files": "sets/ipc{ipc}"}}, arms=HARD), uri)
    assert first.exit_code == 0 and first.stored == 1
    (row,) = _rows(uri)
    assert set(json.loads(row["inputs_json"])) == {"files", "data"} and row["engine_version"] and row["hardware"]

    shutil.copytree(tmp_path / "sets", tmp_path / "moved")       # the same set under another, absolute path, with a '/'
    moved = _run(_spec(methods={"mine": {"files": f"{tmp_path}/moved/ipc{{ipc}}/"}}, arms=HARD), uri)
    assert (moved.already, moved.stored, moved.stale) == (1, 0, [])

    _write_set(tmp_path / "moved" / "ipc1", seed=1)              # re-distilled into the same folder
    changed = _run(_spec(methods={"mine": {"files": f"{tmp_path}/moved/ipc{{ipc}}/"}}, arms=HARD), uri)
    assert changed.stored == 1 and [b.key for b, _ in changed.stale] == [row["key"]]
    assert "files changed" in changed.stale[0][0].reason
    (new,) = _rows(uri)
    assert new["key"] == row["key"] and new["inputs_json"] != row["inputs_json"]
    assert Store(uri).loc.fs.get_file_info(changed.stale[0][1]).size > 0   # the old row is kept aside


def _teacher(path: Path, seed: int) -> None:
    from ddray.engine import save_teacher
    from ddray.models import build_model

    torch.manual_seed(seed)
    save_teacher(build_model("convnet-d1-w16", 1, 10, 8), path)


def test_a_teacher_replaced_in_place_recomputes_its_soft_label_rows(ray_local, tmp_path):
    """Item 5: adding a seed after the teacher changed must not average an old-teacher seed with a new one."""
    ckpt = tmp_path / "teacher.pt"
    _teacher(ckpt, seed=0)
    uri = str(tmp_path / "store")
    soft = [{"arm": "rdm", "labels": "soft", "aug": False}]
    spec = _spec(methods={"mine": {"files": str(tmp_path / "unread")}}, arms=soft,   # rdm arms only: no synthesis
                 teachers={"arch": "convnet-d1-w16", "checkpoint": str(ckpt)})
    assert _run(spec, uri).stored == 1
    _teacher(ckpt, seed=1)                                        # fine-tuned into the same file
    grown = _run({**spec, "seeds": [0, 1]}, uri)
    assert grown.stored == 2 and len(grown.stale) == 1 and "teacher.0 changed" in grown.stale[0][0].reason
    digests = {json.loads(r["inputs_json"])["teacher.0"] for r in _rows(uri)}
    assert len(digests) == 1                                       # both seeds: the new teacher


def _tree(root: Path, per_class: int) -> None:
    for split, n in (("train", per_class), ("val", 2)):
        for c in ("a", "b"):
            for i in range(n):
                jpeg(root / split / c / f"{i}.jpg", (8, 8), "RGB", seed=hash((split, c, i)) % 1000)


def test_a_dataset_root_pointed_at_other_data_is_recomputed_and_a_copy_is_not(ray_local, tmp_path):
    """Item 5: the data's fingerprint (classes, counts, files) is in the row; its root is not."""
    _tree(tmp_path / "small", 2)
    _tree(tmp_path / "big", 4)
    shutil.copytree(tmp_path / "small", tmp_path / "mounted-elsewhere")   # copy2: names, sizes, mtimes kept
    uri = str(tmp_path / "store")

    def spec(root: Path) -> dict:
        return _spec(datasets={"imgs": {"loader": "imagefolder", "root": str(root)}},
                     methods={"mine": {"files": str(tmp_path / "unread")}}, arms=[{"arm": "rdm", "labels": "hard", "aug": False}])

    assert _run(spec(tmp_path / "small"), uri).stored == 1
    same = _run(spec(tmp_path / "mounted-elsewhere"), uri)
    assert (same.already, same.stored) == (1, 0)
    other = _run(spec(tmp_path / "big"), uri)
    assert other.stored == 1 and "data changed" in other.stale[0][0].reason


def test_rows_of_an_older_layout_are_neither_quarantined_nor_recomputed(ray_local, uri, tmp_path):
    """Item 4: a store written before the provenance columns existed keeps every row on upgrade."""
    _write_set(tmp_path / "sets" / "ipc1", seed=0)
    spec = _spec(methods={"mine": {"files": str(tmp_path / "sets" / "ipc{ipc}")}}, arms=HARD)
    assert _run(spec, uri).stored == 1
    store = Store(uri)
    legacy = [c for c in pq.read_table(REPO / "tests/fixtures/rows/v1/eval/040559816d135000.parquet").column_names]
    (stage, keys), = [(s, k) for s, k in store.done_keys().items() if k]
    for key in keys:                                               # rewrite each row as layout 1 wrote it
        path = store.row_path(stage, key)
        with store.loc.fs.open_input_file(path) as f:
            table = pq.read_table(f).select(legacy)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        with store.loc.fs.open_output_stream(path) as f:
            f.write(buf.getvalue())
    again = _run(spec, uri)
    assert (again.already, again.stored, again.quarantined, again.stale) == (1, 0, [], [])
