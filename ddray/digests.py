"""Content digests of the external files a trial reads, and of the real data it trains on.

Why a trial's inputs are identified by content and not by path: a path says *where* a file is,
not *what* it is. Re-distilling a method into the same folder or fine-tuning a teacher into the
same `.pth` keeps the path and changes the numbers; moving a folder, or writing it relative
instead of absolute, changes the path and keeps them. So the key of a trial names *which* input
it reads (a method's `files` set, a loaded teacher, a pretrained checkpoint: `trials.key_dump`
leaves their paths out), and the row records the digest of *what* was read (`inputs_json`). A
stored row whose recorded digests differ from the files now on disk is stale: `ddray run` moves
it to `stale/` and recomputes it (docs/reliability.md says why this beats hashing the digest
into the key: a plan stays pure and needs no data, and keys of stored rows never move).

Hashing is paid once per file version on a node: a file's SHA-256 is remembered under
`$DDRAY_CACHE_DIR/.digests/` with the (path, size, mtime_ns, inode) it was computed for, so a
10 GB set is read once, and a file rewritten in place (new mtime or size or inode) is read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ddray.data.cache import cache_dir, fingerprint
from ddray.keys import canonical_json

DIGEST_LENGTH = 20
_CHUNK = 1 << 20
MISSING = "missing"   # a recorded input that was absent where it was looked for


def bytes_digest(data: bytes) -> str:
    """The digest of bytes in memory (a stored teacher's weights): the same as `file_digest` of a file of them."""
    return hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH]


def _memo_path(path: Path) -> Path:
    return cache_dir() / ".digests" / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"


def _stat_id(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of one file's bytes, read once per (path, size, mtime_ns, inode) on this node."""
    p = Path(path).resolve()
    st = p.stat()
    memo = _memo_path(p)
    try:
        known = json.loads(memo.read_text())
        if known.get("path") == str(p) and known.get("stat") == _stat_id(st):
            return str(known["digest"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()[:DIGEST_LENGTH]
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"path": str(p), "stat": _stat_id(st), "digest": digest}))
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return digest


def path_digest(path: str | os.PathLike) -> str:
    """The digest of a file, or of a folder: its files' relative names and digests (hidden ones skipped).

    Where the folder is does not enter it, so the same set under another path has the same digest.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return file_digest(p)
    if not p.is_dir():
        raise FileNotFoundError(str(path))
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file() and not any(s.startswith(".") for s in q.relative_to(p).parts)):
        h.update(f"{f.relative_to(p).as_posix()}\0{file_digest(f)}\n".encode())
    return h.hexdigest()[:DIGEST_LENGTH]


def input_paths(config: Any) -> dict[str, str]:
    """The external files a trial config reads, by role: `files`, `teacher.<i>`, `checkpoint`.

    Object-store URIs are left out: they are read by the worker and have no node-local stat to
    remember a digest by (docs/reliability.md names this limit).
    """
    out: dict[str, str] = {}
    method = getattr(config, "method", None)
    if method is not None and method.files:
        out["files"] = method.files
    for i, t in enumerate(getattr(config, "teachers", None) or ()):
        if t.checkpoint:
            out[f"teacher.{i}"] = t.checkpoint
    if getattr(config, "checkpoint", None):
        out["checkpoint"] = config.checkpoint
    return {k: v for k, v in out.items() if "://" not in v}


def file_digests(config: Any) -> dict[str, str]:
    """Role -> digest of each external file of `config`; an absent file is recorded as `missing`."""
    out = {}
    for role, path in input_paths(config).items():
        try:
            out[role] = path_digest(path)
        except FileNotFoundError:
            out[role] = MISSING
    return out


_PRINTS: dict[int, tuple[weakref.ref, dict[bool, str]]] = {}


def data_fingerprint(data: Any, with_test: bool = True) -> str:
    """What real data a trial read, wherever it is mounted: class names, per-class train counts,
    test size, and the node cache's fingerprint of the source files (relative names, sizes, mtimes;
    `data.cache.fingerprint` without the ctime, which a copy to another mount changes). In-memory
    datasets (digits) have no files: their classes and counts are what they are. A search trial
    never reads the test split, so its fingerprint leaves it out (`with_test=False`). Computed once
    per loaded dataset in a process (an ImageNet split is a million `stat` calls; loaded data is
    shared by the trials of a worker)."""
    known = _PRINTS.get(id(data))
    if known is not None and known[0]() is data and with_test in known[1]:
        return known[1][with_test]
    fp = _fingerprint(data, with_test)
    old = known[1] if known is not None and known[0]() is data else {}
    _PRINTS[id(data)] = (weakref.ref(data), {**old, with_test: fp})
    return fp


def _fingerprint(data: Any, with_test: bool) -> str:
    parts: dict[str, Any] = {"classes": list(data.classes),
                             "train": data.train.labels.bincount(minlength=len(data.classes)).tolist()}
    splits = (data.train, data.test) if with_test else (data.train,)
    if with_test:
        parts["test"] = len(data.test)  # its size, never its labels
    for split in splits:
        files = split.pixels.source.files()
        if files:
            slot = split.pixels.slot
            parts[f"files.{split.name}"] = fingerprint(list(files), slot.root if slot is not None else None,
                                                       ctime=False)
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:DIGEST_LENGTH]


def trial_inputs(config: Any, data: Any | None) -> dict[str, str]:
    """What a row records in `inputs_json`: each external file's digest, and the data's fingerprint."""
    out = file_digests(config)
    if data is not None:
        out["data"] = data_fingerprint(data, with_test=config.stage != "search")
    return out


def stale_inputs(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The roles whose recorded digest differs from the current one (roles either side lacks are not compared:
    a row written before digests were recorded proves nothing either way)."""
    return sorted(r for r in recorded.keys() & current.keys()
                  if recorded[r] != current[r] and MISSING not in (recorded[r], current[r]))
