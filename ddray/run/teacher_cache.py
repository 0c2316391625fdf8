"""Stored teachers copied into the node cache, named by the digest of their weights (`teacher_file`)."""

from __future__ import annotations

from pathlib import Path

from ddray.data.cache import cache_dir
from ddray.digests import bytes_digest
from ddray.store import Store
from ddray.store.fs import atomic_write_local


def teacher_file(store: Store, key: str) -> Path:
    """A local copy of a stored teacher in the node cache (`$DDRAY_CACHE_DIR/.teachers/`), named by
    the digest of its bytes.

    Why the digest and not the trial key: two stores (or a store rebuilt after a run on another
    GPU) can hold different weights under one key, and a copy named by key would hand one store's
    teacher to the other. The digest is stored beside the weights (`weights.digest`), so a warm
    node reads a few bytes; a teacher stored without one is downloaded and named by what it is.
    """
    folder = cache_dir() / ".teachers"
    known = store.get_artifact("teachers", key, "weights.digest")
    if known is not None and (folder / f"{known.decode().strip()}.pt").is_file():
        return folder / f"{known.decode().strip()}.pt"
    blob = store.get_artifact("teachers", key, "weights.pt")
    if blob is None:
        raise RuntimeError(f"teacher {key} is not in the store; its full-data trial must run first")
    path = folder / f"{bytes_digest(blob)}.pt"
    if not path.is_file():
        atomic_write_local(path, blob)
    return path
