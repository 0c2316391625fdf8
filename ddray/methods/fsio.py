"""Byte-level file access on any pyarrow filesystem, so user sets and saved sets can live in a
local folder or in object storage (`s3://`, `gs://`) with one code path.
"""

from __future__ import annotations

import io

import pyarrow.fs as pafs


def resolve(path: str, fs: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI; an explicit `fs` is used as is."""
    if fs is not None:
        return fs, path
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def kind(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return fs.get_file_info(path).type


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return kind(fs, path) == pafs.FileType.File


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def read_buffer(fs: pafs.FileSystem, path: str) -> io.BytesIO:
    return io.BytesIO(read_bytes(fs, path))


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


def listdir(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    """Direct children of a folder, sorted by name."""
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(infos, key=lambda i: i.base_name)
