"""Files on any pyarrow filesystem: a local folder, file://, s3:// or gs://.

The one place ddray touches files by path: the store (rows, errors, artifacts), saved distilled
sets and a user's own sets all go through these helpers, so one write is atomic everywhere:
on a local disk a temp file + rename (readers see the old state or the whole new file, never a
torn one), on an object store one PUT (an object appears whole or not at all). The local half,
`atomic_write_local`, is also what caches outside a store use.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

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


def open_location(uri: str, fs: pafs.FileSystem | None = None, field: str = "store") -> Location:
    """Resolve a path or URI; a plain path is a local folder (created on first write).

    With `fs`, `uri` is a path inside that filesystem (e.g. a store's artifact folder) and is used
    as is. A URI pyarrow cannot open is an InputError on `field`.
    """
    if fs is not None:
        return Location(fs, uri.rstrip("/") or uri, uri)
    if "://" not in uri:
        return Location(pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise InputError(f"cannot open '{uri}': {e}", path=field) from None
    return Location(fs, path.rstrip("/"), uri)


def atomic_write_local(path: str | Path, data: bytes, exclusive: bool = False) -> bool:
    """Write a whole local file atomically (parents created): a temp file beside it, fsync, rename.

    With `exclusive`, an existing file is never replaced: link(2) fails if the name exists, so
    of two racing writers exactly one wins. Returns whether this call wrote the file.
    """
    path = str(path)
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
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
    """The file's content, or None when it cannot be read (absent)."""
    try:
        with loc.fs.open_input_stream(path) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


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


def listdir(loc: Location, path: str) -> list[pafs.FileInfo]:
    """Direct children of a folder sorted by name, without in-flight temp files (missing folder = empty)."""
    try:
        infos = loc.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    except (FileNotFoundError, OSError):
        return []
    return sorted((i for i in infos if not i.base_name.startswith(TMP_PREFIX)), key=lambda i: i.base_name)


def list_files(loc: Location, path: str, suffix: str = "") -> list[str]:
    """Base names of files directly under `path` ending in `suffix` (missing folder = empty)."""
    return [i.base_name for i in listdir(loc, path) if i.type == pafs.FileType.File and i.base_name.endswith(suffix)]


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
