"""Filesystems behind a store URI: a local folder, file://, s3:// or gs:// (any pyarrow filesystem).

Everything the store writes goes through these helpers so the same code is atomic on a local
disk (temp file + rename) and on an object store (one PUT: an object appears whole or not at all).

Opening a remote store makes its first call (region lookup, one HEAD) in a worker thread with a
deadline: pyarrow's S3 and GCS clients retry unreachable or unauthorized endpoints for minutes
inside native code, deaf to Ctrl-C, so a typo in a bucket name would otherwise hang `ddray plan`.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    root: str          # path inside fs, without a trailing slash
    uri: str           # as the user wrote it (shown in messages)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *[p.strip("/") for p in parts]])


SCHEMES = ("file", "s3", "gs", "gcs")  # gcs:// is pyarrow's other name for gs://
TIMEOUT_ENV = "DDRAY_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
T = TypeVar("T")


def open_location(uri: str, timeout_s: float | None = None) -> Location:
    """Resolve a store URI; a plain path is a local folder (created on first write).

    A remote store must answer one metadata call within `timeout_s` (default: $DDRAY_STORE_TIMEOUT,
    else 30 s); a missing store is fine (created on first write), an unreachable or refused one
    is an InputError naming the URI and pyarrow's reason.
    """
    if "://" not in uri:
        return Location(pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), uri)
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise InputError(f"cannot open store '{uri}': unsupported scheme '{scheme}://'; a store is a local folder "
                         "or a file://, s3:// or gs:// URI", path="store")

    def connect() -> Location:
        fs, path = pafs.FileSystem.from_uri(uri)
        fs.get_file_info(path)  # the first round trip: credentials, region, endpoint
        return Location(fs, path.rstrip("/"), uri)

    try:
        return within(connect, store_timeout() if timeout_s is None else timeout_s)
    except TimeoutError as e:
        raise InputError(f"cannot open store '{uri}': {e} (is the endpoint reachable? set {TIMEOUT_ENV} to wait longer)",
                         path="store") from None
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"cannot open store '{uri}': {_first_line(e)}", path="store") from None


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


def write_bytes(loc: Location, path: str, data: bytes, exclusive: bool = False) -> bool:
    """Write a whole file atomically: readers see the old state or the complete new file.

    With `exclusive`, an existing file is never replaced (locally via link(2), which fails if the
    name exists, so two racing writers cannot both win); returns whether this call wrote it.
    """
    parent = path.rsplit("/", 1)[0]
    if loc.is_local:
        os.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
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
        finally:
            os.unlink(tmp)
    if exclusive and loc.fs.get_file_info(path).type != pafs.FileType.NotFound:
        return False
    loc.fs.create_dir(parent, recursive=True)
    with loc.fs.open_output_stream(path) as f:  # one PUT for small objects
        f.write(data)
    return True


def read_bytes(loc: Location, path: str) -> bytes | None:
    try:
        with loc.fs.open_input_stream(path) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def list_files(loc: Location, path: str, suffix: str = "") -> list[str]:
    """Base names of files directly under `path` ending in `suffix` (missing folder = empty)."""
    try:
        infos = loc.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    except (FileNotFoundError, OSError):
        return []
    return sorted(i.base_name for i in infos
                  if i.type == pafs.FileType.File and i.base_name.endswith(suffix) and not i.base_name.startswith(".tmp-"))


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
