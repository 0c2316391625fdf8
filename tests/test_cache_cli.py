"""`ddray cache warm|ls|rm` on a real JPEG folder and the real node cache."""

from __future__ import annotations

import copy

import pytest
from typer.testing import CliRunner

from ddray.cli import app
from ddray.data import NodeCache, clear_cache
from tests.conftest import TINY_SPEC, write_spec
from tests.test_data_plane import imagenet_shaped

runner = CliRunner()


@pytest.fixture
def node(tmp_path, monkeypatch):
    monkeypatch.setenv("DDRAY_CACHE_DIR", str(tmp_path / "cache"))
    clear_cache()
    yield NodeCache(tmp_path / "cache")
    clear_cache()


def spec_for(tmp_path, root):
    spec = copy.deepcopy(TINY_SPEC)
    spec["datasets"] = {"inet": {"loader": "imagefolder", "root": str(root), "options": {"image_size": 16}}}
    return write_spec(tmp_path / "spec.yaml", spec)


def test_warm_then_ls_then_rm(tmp_path, node):
    spec = spec_for(tmp_path, imagenet_shaped(tmp_path / "inet", train=3, val=2))
    result = runner.invoke(app, ["cache", "warm", str(spec)])
    assert result.exit_code == 0, result.output
    assert "inet train: 9 images (3, 16, 16) torch.uint8" in result.output and "cached" in result.output
    assert "inet: mean (" in result.output  # computed once, kept beside the train entry
    splits = {e.meta["describe"]["split"]: e for e in node.entries()}
    assert set(splits) == {"train", "test"} and (splits["train"].path / "stats.json").is_file()

    again = runner.invoke(app, ["cache", "warm", str(spec)])  # a warm node decodes nothing
    assert again.exit_code == 0 and {e.id for e in node.entries()} == {e.id for e in splits.values()}

    listed = runner.invoke(app, ["cache", "ls"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "loader=imagefolder" in listed.output and "split=train" in listed.output
    assert "2 entries" in listed.output

    gone = splits["test"].id
    assert runner.invoke(app, ["cache", "rm", gone[:8]]).exit_code == 0
    assert gone not in {e.id for e in node.entries()}
    (node.root / ".build-left-by-a-killed-trial").mkdir()
    assert runner.invoke(app, ["cache", "rm", "--all"]).exit_code == 0 and not node.entries()
    assert not list(node.root.iterdir())  # partial builds and lock files go too


def test_bad_input_exits_2_naming_the_problem(tmp_path, node):
    root = imagenet_shaped(tmp_path / "inet", train=3, val=2)
    broken = sorted((root / "val").rglob("*.JPEG"))[0]
    broken.write_bytes(b"\xff\xd8 truncated")
    result = runner.invoke(app, ["cache", "warm", str(spec_for(tmp_path, root))])
    assert result.exit_code == 2 and "1 image file(s) cannot be decoded" in result.output
    assert broken.name in result.output and "Traceback" not in result.output
    assert not [e for e in node.entries() if e.meta.get("describe", {}).get("split") == "test"]

    assert runner.invoke(app, ["cache", "rm"]).exit_code == 2  # neither ENTRY nor --all
    missing = runner.invoke(app, ["cache", "rm", "nope"])
    assert missing.exit_code == 2 and "no entry" in missing.output


def test_verify_names_a_damaged_entry_and_exits_1(tmp_path, node):
    spec = spec_for(tmp_path, imagenet_shaped(tmp_path / "inet", train=3, val=2))
    assert runner.invoke(app, ["cache", "warm", str(spec)]).exit_code == 0
    ok = runner.invoke(app, ["cache", "verify"])
    assert ok.exit_code == 0 and "2 entries checked" in ok.output and "0 damaged" in ok.output
    (test,) = [e for e in node.entries() if e.meta["describe"]["split"] == "test"]
    x = test.path / "x.npy"
    data = bytearray(x.read_bytes())
    data[-1] ^= 0x01  # one bit, size kept
    x.write_bytes(bytes(data))
    bad = runner.invoke(app, ["cache", "verify"], env={"COLUMNS": "200"})
    assert bad.exit_code == 1 and f"damaged: {test.id}" in bad.output and "x.npy chunk 0" in bad.output
    assert "1 damaged" in bad.output


def test_rm_never_removes_a_build_in_progress_or_its_lock(tmp_path, node):
    """`rm --all` while another process builds: the build folder, the entry and the lock stay."""
    import threading

    spec = spec_for(tmp_path, imagenet_shaped(tmp_path / "inet", train=3, val=2))
    assert runner.invoke(app, ["cache", "warm", str(spec)]).exit_code == 0
    building = node.entries()[0]
    done = {}
    with node.lock(building.id):        # a builder holds the entry's lock ...
        partial = node.root / f".build-{building.id}-abc"
        partial.mkdir()                  # ... and writes its temporary folder
        worker = threading.Thread(target=lambda: done.update(out=runner.invoke(app, ["cache", "rm", "--all"])))
        worker.start()
        worker.join(timeout=30)          # rm does not wait for the builder (nor block it)
        assert not worker.is_alive()
        assert partial.is_dir() and building.path.is_dir() and (node.root / f"{building.id}.lock").is_file()
        assert f"kept {building.id}: it is being built now" in done["out"].output
        with node.lock(building.id, wait=False) as second:
            assert not second            # still exclusive: no second builder gets in
    assert runner.invoke(app, ["cache", "rm", "--all"]).exit_code == 0
    assert not list(node.root.iterdir())
