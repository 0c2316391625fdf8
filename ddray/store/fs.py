"""Filesystems behind a store URI: a local folder, file://, s3:// or gs:// (any pyarrow filesystem).

Everything the store writes goes through these helpers so the same code is atomic on a local
disk (temp file + rename) and on an object store (one PUT: an object appears whole or not at all).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

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


def open_location(uri: str) -> Location:
    """Resolve a store URI; a plain path is a local folder (created on first write)."""
    if "://" not in uri:
        return Location(pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()), uri)
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pafs.ArrowInvalid, ValueError, OSError) as e:  # type: ignore[attr-defined]
        raise InputError(f"cannot open store '{uri}': {e}", path="store") from None
    return Location(fs, path.rstrip("/"), uri)


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
