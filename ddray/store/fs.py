"""Files on any pyarrow filesystem: a local folder, file://, s3:// or gs://.

The one place ddray touches files by path: the store (rows, errors, artifacts), saved distilled
sets and a user's own sets all go through these helpers, so one write is atomic everywhere:
on a local disk a temp file + rename (readers see the old state or the whole new file, never a
torn one), on an object store one PUT (an object appears whole or not at all). The local half,
`atomic_write_local`, is also what caches outside a store use.

Opening a remote store makes its first call (region lookup, one HEAD) in a worker thread with a
deadline: pyarrow's S3 and GCS clients retry unreachable or unauthorized endpoints for minutes
inside native code, deaf to Ctrl-C, so a typo in a bucket name would otherwise hang `ddray plan`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.fs as pafs

from ddray.errors import InputError

TMP_PREFIX = ".tmp-"  # in-flight local writes; listings never show them


@dataclass(frozen=True)
class Location:
    """A folder on a filesystem, and the name the user gave it (shown in messages)."""

    fs: pafs.FileSystem
    root: str          # path inside fs, without a trailing slash
    uri: str           # as the user wrote it

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        """A path inside `fs` below the root."""
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts]])

    def shown(self, *parts: str) -> str:
        """The same place as the user would write it (their URI or path), for messages."""
        return "/".join([self.uri.rstrip("/"), *[p.strip("/") for p in parts]])

SCHEMES = ("file", "s3", "gs", "gcs")  # gcs:// is pyarrow's other name for gs://
TIMEOUT_ENV = "DDRAY_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
T = TypeVar("T")


def open_location(uri: str, fs: pafs.FileSystem | None = None, field: str = "store",
                  timeout_s: float | None = None, folder: bool = False) -> Location:
    """Resolve a path or URI; a plain path is a local folder (created on first write).

    With `fs`, `uri` is a path inside that filesystem (e.g. a store's artifact folder) and is used
    as is. A remote URI must answer one metadata call within `timeout_s` (default:
    $DDRAY_STORE_TIMEOUT, else 30 s); a missing store is fine (created on first write), an
    unreachable or refused one, or an unsupported scheme, is an InputError on `field` naming the
    URI and the reason; so is a control character in it, and with `folder` (a store) a local file
    in its place or above it.
    """
    if fs is not None:
        return Location(fs, uri.rstrip("/") or uri, uri)
    problem = local_path_problem(uri, folder)
    if problem:
        raise InputError(problem, path=field)
    if "://" not in uri:
        return Location(pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise InputError(f"cannot open '{uri}': unsupported scheme '{scheme}://'; use a local folder "
                         "or a file://, s3:// or gs:// URI", path=field)

    def connect() -> Location:
        fs, path = pafs.FileSystem.from_uri(uri)
        fs.get_file_info(path)  # the first round trip: credentials, region, endpoint
        return Location(fs, path.rstrip("/"), uri)

    what = f"store '{uri}'" if field == "store" else f"'{uri}'"
    try:
        return within(connect, store_timeout() if timeout_s is None else timeout_s)
    except TimeoutError as e:
        raise InputError(f"cannot open {what}: {e} (is the endpoint reachable? set {TIMEOUT_ENV} to wait longer)",
                         path=field) from None
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"cannot open {what}: {_first_line(e)}", path=field) from None


def local_path_problem(uri: str, folder: bool = True) -> str | None:
    """Why `uri` cannot name a place (a NUL or other control character) or, with `folder`, cannot be
    a folder (a file in its place or above it); None when it can.

    Checked when a store or folder is named (`ddray validate` too), not at the first write deep
    in a worker, where it read as `[Errno 17] File exists` or a ValueError traceback.
    """
    if not uri.strip():
        return "is empty"
    bad = sorted({repr(c) for c in uri if ord(c) < 32 or c == "\x7f"})
    if bad:
        return f"{uri!r} contains the control character(s) {', '.join(bad)}"
    if not folder or ("://" in uri and not uri.lower().startswith("file://")):
        return None
    path = Path(uri[len("file://"):] if uri.lower().startswith("file://") else uri).expanduser()
    for p in (path, *path.parents):
        try:
            if p.exists() and not p.is_dir():
                where = f"{p} is a file" if p != path else "it is a file, not a folder"
                return f"'{uri}' is not writable as a folder: {where}"
        except OSError as e:  # e.g. a name too long
            return f"'{uri}': {e.strerror or e}"
    return None


def store_timeout() -> float:
    """Seconds a remote store gets to answer its first call ($DDRAY_STORE_TIMEOUT, default 30)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise InputError(f"must be a number of seconds, not '{raw}'", path=TIMEOUT_ENV) from None


def within(fn: Callable[[], T], timeout_s: float) -> T:
    """fn() in a daemon thread: its result or exception, or TimeoutError after `timeout_s`.

    A call stuck in native code cannot be cancelled; the daemon thread is abandoned and never
    keeps the process alive. The wait is short joins in a loop: should SIGINT land on one of the
    native client's threads, it would not wake a long join, but Python raises the pending
    KeyboardInterrupt in the main thread as soon as a short join returns.
    """
    out: list = []

    def run() -> None:
        try:
            out.append((True, fn()))
        except BaseException as e:  # noqa: BLE001 — handed to the caller's thread as is
            out.append((False, e))

    worker = threading.Thread(target=run, name="ddray-store-open", daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    while worker.is_alive() and time.monotonic() < deadline:
        worker.join(min(0.1, max(0.0, deadline - time.monotonic())))
    if not out:
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    ok, value = out[0]
    if not ok:
        raise value
    return value


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def atomic_write_local(path: str | Path, data: bytes, exclusive: bool = False) -> bool:
    """Write a whole local file atomically (parents created): a temp file beside it, fsync, rename.

    With `exclusive`, an existing file is never replaced: link(2) fails if the name exists, so
    of two racing writers exactly one wins. Returns whether this call wrote the file.
    """
    path = str(path)
    parent = os.path.dirname(path) or "."
    tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
    try:
        os.makedirs(parent, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    except OSError as e:  # a full disk, a folder without permission: name the file, not its temp
        raise type(e)(e.errno, e.strerror or str(e), path) from e
    finally:
        with contextlib.suppress(FileNotFoundError):  # a failed write leaves no partial temp file behind
            os.unlink(tmp)


def write_bytes(loc: Location, path: str, data: bytes, exclusive: bool = False) -> bool:
    """Write a whole file atomically: readers see the old state or the complete new file.

    With `exclusive`, an existing file is never replaced (on an object store: checked just before
    the PUT); returns whether this call wrote it.
    """
    if loc.is_local:
        return atomic_write_local(path, data, exclusive)
    if exclusive and loc.fs.get_file_info(path).type != pafs.FileType.NotFound:
        return False
    loc.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with loc.fs.open_output_stream(path) as f:  # one PUT for small objects
        f.write(data)
    return True


def read_bytes(loc: Location, path: str) -> bytes | None:
    """The file's content, or None when there is no file at `path`.

    Only absence is None. Any other failure (permission denied, a dropped connection, a folder
    where a file should be) raises: a transient error must not read as "absent", or a lease
    would look free and a stored row missing.
    """
    try:
        with loc.fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError:
        if _absent(loc, path):  # some object-store clients say "not found" as a plain OSError
            return None
        raise


def _absent(loc: Location, path: str) -> bool:
    try:
        return loc.fs.get_file_info(path).type == pafs.FileType.NotFound
    except OSError:
        return False


def read_failure(loc: Location, path: str, e: OSError) -> str:
    """Why `path` could not be read, in a few words for listings ("permission denied", ...)."""
    if isinstance(e, PermissionError) or e.errno == errno.EACCES or "Permission denied" in str(e):
        return "permission denied"
    with contextlib.suppress(OSError):
        if isinstance(e, IsADirectoryError) or kind(loc, path) == pafs.FileType.Directory:
            return "is a folder, not a file"
    return f"could not be read: {_first_line(e)}"


def read_buffer(loc: Location, path: str) -> io.BytesIO:
    """The file's content as a seekable buffer (what torch.load, np.load and PIL read)."""
    data = read_bytes(loc, path)
    if data is None:
        raise FileNotFoundError(path)
    return io.BytesIO(data)


def kind(loc: Location, path: str) -> pafs.FileType:
    """File, Directory or NotFound."""
    return loc.fs.get_file_info(path).type


def is_file(loc: Location, path: str) -> bool:
    return kind(loc, path) == pafs.FileType.File


def listdir(loc: Location, path: str, strict: bool = False) -> list[pafs.FileInfo]:
    """Direct children of a folder sorted by name, without in-flight temp files (missing folder = empty).

    With `strict`, a folder that cannot be listed raises instead of reading as empty.
    """
    try:
        infos = loc.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    except (FileNotFoundError, OSError):
        if strict:
            raise
        return []
    return sorted((i for i in infos if not i.base_name.startswith(TMP_PREFIX)), key=lambda i: i.base_name)


def list_files(loc: Location, path: str, suffix: str = "", strict: bool = False) -> list[str]:
    """Base names of files directly under `path` ending in `suffix` (missing folder = empty)."""
    return [i.base_name for i in listdir(loc, path, strict) if i.type == pafs.FileType.File and i.base_name.endswith(suffix)]


def delete_dir(loc: Location, path: str) -> None:
    try:
        loc.fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


def delete_file(loc: Location, path: str) -> None:
    try:
        loc.fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass
