"""Saving and loading a synthesized set as store artifacts (`images.pt`, `labels.pt`, `lr.pt`,
`meta.json`) on any pyarrow filesystem.

Each file is written atomically, and `meta.json` is written last and read first: a folder without
it is an interrupted save, never a half-loaded set. The tensor layout is the same as a user's
`files` folder, so a saved set can be fed back to another run as `files`.
"""

from __future__ import annotations

import io
import json

import pyarrow.fs as pafs
import torch

from ddray.errors import InputError
from ddray.methods.contract import DistilledSet
from ddray.store.fs import is_file, open_location, read_buffer, write_bytes

META = "meta.json"


def _tensor_bytes(t: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.save(t.detach().cpu().contiguous(), buf)
    return buf.getvalue()


def save_distilled(ds: DistilledSet, fs: pafs.FileSystem | None, path: str) -> None:
    """Write `ds` under folder `path` of `fs` (None: `path` is a local path or a URI)."""
    loc = open_location(path, fs, field="distilled set")
    write_bytes(loc, loc.join("images.pt"), _tensor_bytes(ds.images))
    write_bytes(loc, loc.join("labels.pt"), _tensor_bytes(ds.labels))
    if ds.lr is not None:
        write_bytes(loc, loc.join("lr.pt"), _tensor_bytes(torch.tensor(float(ds.lr))))
    meta = {
        "num_images": int(ds.images.shape[0]),
        "image_shape": list(ds.images.shape[1:]),
        "labels": "soft" if ds.soft else "hard",
        "lr": ds.lr,
        "synth_seconds": ds.synth_seconds,
        "device": ds.device,
        "torch": torch.__version__,
    }
    write_bytes(loc, loc.join(META), json.dumps(meta, indent=1).encode())


def load_distilled(fs: pafs.FileSystem | None, path: str, device: torch.device | str = "cpu") -> DistilledSet:
    """Read a set written by `save_distilled` (tensors loaded with weights_only=True)."""
    loc = open_location(path, fs, field="distilled set")
    meta_path = loc.join(META)
    if not is_file(loc, meta_path):
        raise InputError(f"no {META}: not a saved distilled set, or its save was interrupted", path=loc.shown(META))
    meta = json.load(read_buffer(loc, meta_path))

    def load(name: str) -> torch.Tensor:
        return torch.load(read_buffer(loc, loc.join(name)), map_location=device, weights_only=True)

    return DistilledSet(load("images.pt"), load("labels.pt"), meta.get("lr"), meta.get("synth_seconds"), meta.get("device"))
