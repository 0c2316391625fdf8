"""The node cache: one decoded copy of a split per node, memory-mapped by every trial on it.

Layout: `$DDRAY_CACHE_DIR` (default `~/.cache/ddray/data`) holds one folder per entry, named by
the hash of what the entry is (cache format version, loader, resolved root, options, split, and
a fingerprint of its files: relative names, sizes, mtimes and ctimes), with `x.npy` (the pixels, or any
per-row array such as embeddings), `y.npy` (labels, when the rows have them) and `meta.json`
(what it is, its layout, and `stats.json` beside it once normalization statistics are computed).

Why memory-mapped files rather than Ray's object store: an entry survives the run, the driver
and the Ray cluster (the next `ddray run` on the node starts warm); reads go through the page
cache, which every process on the node shares (two trials reading one split hold one copy,
and the kernel evicts it under pressure instead of failing); it has no object-store size limit
or spilling, and it works without Ray (`ddray cache warm`, the GPU benchmark, tests).

Concurrency: an entry is built in a temporary folder and renamed into place, so a reader sees
a whole entry or none; an `fcntl.flock` on `<entry>.lock` makes a second process that needs the
same entry wait for the first builder and then read it instead of decoding again. At open, the
version, layout and file sizes are checked against the header: a truncated or foreign entry is
rebuilt, never read as data. Every file's bytes are checked too: the build writes a CRC-32 of
each 16 MiB chunk of `x.npy` and `y.npy` into `meta.json`, and the first open of an entry reads
them back and compares (about 0.5 s per GB, once); a damaged entry is rebuilt, and
`ddray cache verify` names it. A passed check is remembered in `verified.json` with each file's
inode, size, mtime and ctime, so later opens cost one stat: any write to a file changes its
ctime, which no user can set back, so a file edited after the check is checked again.

A split that does not fit (`budget_bytes`, `runtime.cache_gb` in a spec, or the disk's free
space), or a cache folder that cannot be written, is not cached: its readers stream from the
source files. `rm` never removes an entry being built or its lock (see `lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 2  # 2: chunk checksums in meta.json
CHUNK = 16 << 20    # bytes per checksum
CHECKED = ("x.npy", "y.npy")
ENV_DIR = "DDRAY_CACHE_DIR"
DEFAULT_DIR = Path("~/.cache/ddray/data")
DISK_RESERVE_FRACTION = 0.10  # never fill the disk past 90% ...
DISK_RESERVE_MIN = 2 << 30  # ... and always leave 2 GiB free


def cache_dir() -> Path:
    """Where this node's cache lives: `$DDRAY_CACHE_DIR`, else `~/.cache/ddray/data`."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR).expanduser()


def entry_id(parts: Any) -> str:
    """The folder name of an entry: a hash of the JSON of what it is (format version included)."""
    text = json.dumps([FORMAT_VERSION, parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def fingerprint(files: list[Path], root: Path | None, *, ctime: bool = True) -> str:
    """Relative names, sizes, mtimes and ctimes of `files`: a changed, added or removed file changes it.

    The ctime catches an edit that keeps size and mtime (`touch -r`): every write sets it and no
    user can set it back. It costs nothing more than the stat already made (no file is read);
    the price is a rebuild after a chmod, chown or a copy of the dataset, which also set it.
    `ctime=False` is the data's identity across machines (`ddray.digests.data_fingerprint`): a
    copy of a dataset to another mount is the same data, and only this node's cache must notice
    an edit made in place.
    """
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        name = os.path.relpath(f, root) if root is not None else str(f)
        stamp = f"\0{st.st_ctime_ns}" if ctime else ""
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}{stamp}\n".encode())
    return h.hexdigest()[:20]


def checksums(path: Path) -> list[int]:
    """CRC-32 of each CHUNK bytes of a file (crc32 runs at about 2 GB/s: a build barely notices)."""
    out = []
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            out.append(zlib.crc32(chunk))
    return out


def damaged(path: Path, meta: dict[str, Any]) -> list[str]:
    """What in entry `path` does not match the checksums of its meta: `x.npy chunk 3 (bytes ...)`."""
    sums = meta.get("checksums")
    if not isinstance(sums, dict):
        return ["meta.json has no checksums"]
    bad = []
    for name, want in sums.items():
        try:
            got = checksums(path / name)
        except OSError as e:
            bad.append(f"{name}: {e.strerror or e}")
            continue
        if len(got) != len(want):
            bad.append(f"{name}: {len(got)} chunks, {len(want)} expected")
        bad += [f"{name} chunk {i} (bytes {i * CHUNK}-{(i + 1) * CHUNK - 1})"
                for i, (g, w) in enumerate(zip(got, want)) if g != w]
    return bad


def _signature(path: Path, names: Any) -> dict[str, list[int]]:
    sig = {}
    for name in names:
        st = (path / name).stat()
        sig[name] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return sig


@dataclass(frozen=True)
class Layout:
    """The array an entry holds: `count` rows of `row` shape and `dtype`."""

    count: int
    row: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return self.count * int(np.prod(self.row, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def json(self) -> dict[str, Any]:
        return {"count": self.count, "row": list(self.row), "dtype": self.dtype}


@dataclass(frozen=True)
class Entry:
    """An opened, checked entry: `x` is a copy-on-write memory map (writes stay private).

    `fresh`: this process just built it (else it was found, built earlier or by another process)."""

    path: Path
    x: np.ndarray
    meta: dict[str, Any]
    fresh: bool = False


def read_rows(entry: Entry, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of an entry by plain file reads: unlike indexing `entry.x`, they do not
    stay mapped into this process (its RSS), which suits one-off passes such as statistics."""
    row = entry.x.shape[1:]
    count = (stop - start) * int(np.prod(row, dtype=np.int64))
    with open(entry.path / "x.npy", "rb") as f:
        f.seek(entry.x.offset + start * (count // max(1, stop - start)) * entry.x.dtype.itemsize)
        data = np.fromfile(f, dtype=entry.x.dtype, count=count)
    return data.reshape(stop - start, *row)


@dataclass(frozen=True)
class EntryInfo:
    """One entry as `ddray cache ls` shows it."""

    id: str
    path: Path
    bytes: int
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        """split, embeddings, statistics (a split too large to cache keeps only these), or unreadable."""
        if not self.meta:
            return "unreadable"
        return self.meta.get("describe", {}).get("kind") or ("split" if self.meta.get("pixels") else "statistics")

    @property
    def what(self) -> str:
        d = self.meta.get("describe", {})
        return ", ".join(f"{k}={v}" for k, v in d.items() if k != "kind" and v not in (None, {}, ""))


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic: a reader sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_UNWRITABLE: set[Path] = set()  # cache folders found unwritable in this process (warned once)


@dataclass(frozen=True)
class NodeCache:
    """The cache folder of this node and how much it may hold (`budget_bytes`; None: what the disk spares)."""

    root: Path
    budget_bytes: int | None = None

    @classmethod
    def default(cls, cache_gb: float | None = None) -> NodeCache:
        """`cache_dir()` with a budget in GB (`runtime.cache_gb`; 0 disables the cache)."""
        return cls(cache_dir(), None if cache_gb is None else int(cache_gb * (1 << 30)))

    @property
    def enabled(self) -> bool:
        return self.budget_bytes != 0

    def path(self, eid: str) -> Path:
        return self.root / eid

    def writable(self) -> bool:
        """Whether entries can be built here; when not (a file, a read-only folder), say so once per
        process and folder: the cache is an optimisation, so trials stream from the files instead."""
        if self.root in _UNWRITABLE:
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
            return True
        except OSError as e:
            _UNWRITABLE.add(self.root)
            print(f"ddray: warning: node cache {self.root} is not writable ({e.strerror or e}); "
                  f"splits are read from their files instead (set {ENV_DIR} to a writable folder)",
                  file=sys.stderr, flush=True)
            return False

    # ------------------------------------------------------------------ reading
    def open(self, eid: str, layout: Layout, labels: np.ndarray | None = None) -> Entry | None:
        """The complete entry `eid` with exactly this layout (and these labels), or None (absent,
        partial or foreign: then a build replaces it)."""
        path = self.path(eid)
        meta = _read_json(path / "meta.json")
        if meta is None or meta.get("version") != FORMAT_VERSION or not meta.get("pixels", True):
            return None
        if meta.get("layout") != layout.json():
            return None
        try:
            x = np.load(path / "x.npy", mmap_mode="c", allow_pickle=False)
        except (OSError, ValueError):  # missing, truncated (mmap longer than the file), not an .npy
            return None
        if x.shape != (layout.count, *layout.row) or str(x.dtype) != layout.dtype:
            return None
        if x.offset + layout.nbytes != os.path.getsize(path / "x.npy"):  # trailing bytes: not what we wrote
            return None
        if labels is not None:
            try:
                stored = np.load(path / "y.npy", allow_pickle=False)
            except (OSError, ValueError):
                return None
            if not np.array_equal(stored, labels):
                return None
        if not self._checked(path, meta):
            return None
        return Entry(path, x, meta)

    def _checked(self, path: Path, meta: dict[str, Any]) -> bool:
        """The entry's bytes match its checksums: read and compared on the first open, then
        remembered in `verified.json` for as long as no file of it changes (inode, size, mtime, ctime)."""
        names = list((meta.get("checksums") or {}).keys())
        try:
            sig = _signature(path, names)
        except OSError:
            return False
        if names and _read_json(path / "verified.json") == sig:
            return True
        bad = damaged(path, meta)
        if bad:
            print(f"ddray: node cache entry {path.name} is damaged ({bad[0]}); rebuilding it from the files",
                  file=sys.stderr, flush=True)
            return False
        with contextlib.suppress(OSError):  # a read-only cache checks again next time
            _write_json(path / "verified.json", sig)
        return True

    def verify(self) -> list[tuple[EntryInfo, list[str]]]:
        """Every entry of this format holding data, with what is damaged in it (empty: its bytes match
        its checksums). Entries of an older format are never opened (their ids differ): not checked."""
        out = []
        for e in self.entries():
            if e.meta.get("pixels") is False or (e.meta and e.meta.get("version") != FORMAT_VERSION):
                continue  # statistics only (nothing to check beyond the JSON that parsed), or unused
            out.append((e, damaged(e.path, e.meta) if e.meta else ["meta.json is unreadable"]))
        return out

    def stats(self, eid: str, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        """Normalization statistics stored for `eid` at `scale`, if any."""
        data = _read_json(self.path(eid) / "stats.json") or {}
        found = data.get(repr(float(scale)))
        if not isinstance(found, dict):
            return None
        return tuple(found["mean"]), tuple(found["std"])

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self, eid: str, wait: bool = True) -> Iterator[bool]:
        """Exclusive per entry across processes: the second builder waits, then finds the entry built.

        Yields True once held; with `wait=False`, yields False at once when another process holds
        it (a live build). The lock file may be unlinked only by its holder (`remove`): a process
        that locked a file that was unlinked meanwhile locks the new one instead, so two processes
        never hold "the" lock of one entry at once.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{eid}.lock"
        while True:
            with open(path, "a+") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    yield False
                    return
                try:
                    same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # unlinked by a remover while we waited: lock the file that is there now
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                    continue
                try:
                    yield True
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return

    def room_for(self, nbytes: int) -> bool:
        """Whether an entry of `nbytes` fits the budget and the disk's spare space."""
        if not self.enabled:
            return False
        if self.budget_bytes is not None and self.used_bytes() + nbytes > self.budget_bytes:
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        disk = shutil.disk_usage(self.root)
        reserve = max(DISK_RESERVE_MIN, int(disk.total * DISK_RESERVE_FRACTION))
        return disk.free - reserve >= nbytes

    def build(self, eid: str, layout: Layout, describe: dict[str, Any], fill: Callable[[np.ndarray], None],
              labels: np.ndarray | None = None) -> Entry | None:
        """The entry `eid`, built by `fill(x)` unless another process built it first; None when it does not fit.

        `fill` writes every row of the memory-mapped `x`; an exception from it (an undecodable
        image) leaves no entry behind and propagates.
        """
        if not self.enabled or not self.writable():
            return None
        with self.lock(eid):
            entry = self.open(eid, layout, labels)
            if entry is not None:
                return entry
            extra = 0 if labels is None else labels.nbytes
            if not self.room_for(layout.nbytes + extra):
                return None
            tmp = Path(tempfile.mkdtemp(prefix=f".build-{eid}-", dir=self.root))
            try:
                tmp.chmod(0o755)  # mkdtemp makes it private; other users' trials on the node read it too
                x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.dtype(layout.dtype),
                                              shape=(layout.count, *layout.row))
                t0 = time.perf_counter()
                fill(x)
                x.flush()
                del x
                if labels is not None:
                    np.save(tmp / "y.npy", labels)
                sums = {n: checksums(tmp / n) for n in CHECKED if (tmp / n).exists()}
                meta = {"version": FORMAT_VERSION, "pixels": True, "layout": layout.json(), "describe": describe,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "build_s": round(time.perf_counter() - t0, 3),
                        "checksums": sums}
                _write_json(tmp / "meta.json", meta)
                _write_json(tmp / "verified.json", _signature(tmp, sums))  # just computed from these files
                self._replace(eid, tmp)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        built = self.open(eid, layout, labels)
        return None if built is None else replace(built, fresh=True)

    def _replace(self, eid: str, tmp: Path) -> None:
        """Rename `tmp` into place; a stale entry there (partial, foreign, stats only) goes, its stats stay."""
        final = self.path(eid)
        if final.exists():
            stats = final / "stats.json"
            if stats.is_file() and not (tmp / "stats.json").exists():
                shutil.copy2(stats, tmp / "stats.json")
            trash = Path(tempfile.mkdtemp(prefix=f".old-{eid}-", dir=self.root))
            os.rename(final, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, final)

    def save_stats(self, eid: str, scale: float, mean: tuple[float, ...], std: tuple[float, ...],
                   describe: dict[str, Any]) -> None:
        """Keep statistics beside the entry (creating a stats-only entry when the pixels were not cached)."""
        if not self.enabled or not self.writable():
            return
        with self.lock(eid):
            path = self.path(eid)
            if not (path / "meta.json").is_file():
                path.mkdir(parents=True, exist_ok=True)
                _write_json(path / "meta.json", {"version": FORMAT_VERSION, "pixels": False, "describe": describe,
                                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
            data = _read_json(path / "stats.json") or {}
            data[repr(float(scale))] = {"mean": list(mean), "std": list(std)}
            _write_json(path / "stats.json", data)

    # ------------------------------------------------------------------ listing
    def entries(self) -> list[EntryInfo]:
        """Every entry folder with its meta (unreadable ones too: `rm` must be able to remove them)."""
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):
                out.append(EntryInfo(p.name, p, _dir_bytes(p), _read_json(p / "meta.json") or {}))
        return out

    def used_bytes(self) -> int:
        return sum(e.bytes for e in self.entries())

    def clear(self) -> tuple[int, list[str]]:
        """Remove every entry and what killed builders left behind (`.build-*` folders, lock files);
        returns how many entries went and the ids being built now, which are left alone."""
        busy: list[str] = []
        removed = 0
        for e in self.entries():
            if self.remove(e.id):
                removed += 1
            elif self.path(e.id).is_dir():
                busy.append(e.id)
        if self.root.is_dir():
            for p in sorted(self.root.iterdir()):
                if p.name.startswith((".build-", ".old-")) and p.is_dir():
                    eid = p.name.split("-")[1]
                    with self.lock(eid, wait=False) as held:  # held: its builder is gone
                        if held:
                            shutil.rmtree(p, ignore_errors=True)
                            if not self.path(eid).exists():
                                (self.root / f"{eid}.lock").unlink(missing_ok=True)
                        elif eid not in busy:
                            busy.append(eid)
                elif p.suffix == ".lock" and not self.path(p.stem).exists():
                    with self.lock(p.stem, wait=False) as held:
                        if held:
                            p.unlink(missing_ok=True)
        return removed, busy

    def remove(self, eid: str) -> bool:
        """Delete one entry unless it is being built now (processes that mapped it keep reading their
        mapping until they close it). Its lock file goes while held, so no builder can slip in."""
        path = self.path(eid)
        if not path.is_dir():
            return False
        with self.lock(eid, wait=False) as held:
            if not held:
                return False
            shutil.rmtree(path, ignore_errors=True)
            (self.root / f"{eid}.lock").unlink(missing_ok=True)
        return True
