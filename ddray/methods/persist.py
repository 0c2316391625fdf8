"""Saving and loading a synthesized set as store artifacts (`images.pt`, `labels.pt`, `lr.pt`,
`meta.json`) on any pyarrow filesystem.

`meta.json` is written last and read first: a folder without it is an interrupted save, never a
half-loaded set. The tensor layout is the same as a user's `files` folder, so a saved set can be
fed back to another run as `files`.
"""

from __future__ import annotations

import io
import json

import pyarrow.fs as pafs
import torch

from ddray.errors import InputError
from ddray.methods import fsio
from ddray.methods.types import DistilledSet

META = "meta.json"


def _tensor_bytes(t: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.save(t.detach().cpu().contiguous(), buf)
    return buf.getvalue()


def save_distilled(ds: DistilledSet, fs: pafs.FileSystem | None, path: str) -> None:
    """Write `ds` under folder `path` of `fs` (None: resolve a local path or URI)."""
    fs, path = fsio.resolve(path, fs)
    fs.create_dir(path, recursive=True)
    fsio.write_bytes(fs, fsio.join(path, "images.pt"), _tensor_bytes(ds.images))
    fsio.write_bytes(fs, fsio.join(path, "labels.pt"), _tensor_bytes(ds.labels))
    if ds.lr is not None:
        fsio.write_bytes(fs, fsio.join(path, "lr.pt"), _tensor_bytes(torch.tensor(float(ds.lr))))
    meta = {
        "num_images": int(ds.images.shape[0]),
        "image_shape": list(ds.images.shape[1:]),
        "labels": "soft" if ds.soft else "hard",
        "lr": ds.lr,
        "synth_seconds": ds.synth_seconds,
        "device": ds.device,
        "torch": torch.__version__,
    }
    fsio.write_bytes(fs, fsio.join(path, META), json.dumps(meta, indent=1).encode())


def load_distilled(fs: pafs.FileSystem | None, path: str, device: torch.device | str = "cpu") -> DistilledSet:
    """Read a set written by `save_distilled` (tensors loaded with weights_only=True)."""
    fs, path = fsio.resolve(path, fs)
    meta_path = fsio.join(path, META)
    if not fsio.exists(fs, meta_path):
        raise InputError(f"no {META}: not a saved distilled set, or its save was interrupted", path=meta_path)
    meta = json.loads(fsio.read_bytes(fs, meta_path))

    def load(name: str) -> torch.Tensor:
        return torch.load(fsio.read_buffer(fs, fsio.join(path, name)), map_location=device, weights_only=True)

    return DistilledSet(load("images.pt"), load("labels.pt"), meta.get("lr"), meta.get("synth_seconds"), meta.get("device"))
