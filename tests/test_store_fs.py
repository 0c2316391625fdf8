"""The one filesystem layer: atomic writes (local temp + rename, exclusive create), listings that
never show an in-flight temp file, and reads that say what is missing."""

from __future__ import annotations

import threading

import pyarrow.fs as pafs
import pytest

from ddray.errors import InputError
from ddray.store.fs import (
    TMP_PREFIX,
    atomic_write_local,
    list_files,
    listdir,
    open_location,
    read_buffer,
    read_bytes,
    write_bytes,
)


def test_atomic_write_local_creates_parents_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    assert atomic_write_local(path, b"one") and path.read_bytes() == b"one"
    assert atomic_write_local(str(path), b"two") and path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["x.bin"]


def test_exclusive_write_has_exactly_one_winner(tmp_path):
    path = tmp_path / "row.parquet"
    results: list[bool] = []
    threads = [threading.Thread(target=lambda i=i: results.append(atomic_write_local(path, b"%d" % i, exclusive=True)))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    assert path.read_bytes() in {b"%d" % i for i in range(8)}
    assert [p.name for p in tmp_path.iterdir()] == ["row.parquet"]


@pytest.mark.parametrize("subtree", [False, True])
def test_write_read_list_on_local_and_other_filesystems(tmp_path, subtree):
    """A SubTreeFileSystem is not a LocalFileSystem: it takes the object-store branch (one stream)."""
    loc = open_location("st", pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())) if subtree \
        else open_location(str(tmp_path / "st"))
    assert loc.is_local is not subtree
    p = loc.join("rows", "k.parquet")
    assert write_bytes(loc, p, b"first", exclusive=True)
    assert not write_bytes(loc, p, b"second", exclusive=True)
    assert read_bytes(loc, p) == b"first" and read_buffer(loc, p).read() == b"first"
    (tmp_path / "st" / "rows" / f"{TMP_PREFIX}123").write_bytes(b"torn")  # a writer killed mid-write
    assert list_files(loc, loc.join("rows")) == ["k.parquet"]
    assert [i.base_name for i in listdir(loc, loc.join("rows"))] == ["k.parquet"]
    assert listdir(loc, loc.join("nothing")) == [] and read_bytes(loc, loc.join("nothing")) is None
    with pytest.raises(FileNotFoundError):
        read_buffer(loc, loc.join("nothing"))


def test_location_names_places_as_the_user_wrote_them(tmp_path):
    loc = open_location(str(tmp_path) + "/set/")
    assert loc.root == str(tmp_path / "set") and loc.shown("images.pt") == f"{tmp_path}/set/images.pt"
    with pytest.raises(InputError, match=r"^store: cannot open 'nope://x'"):
        open_location("nope://x")
