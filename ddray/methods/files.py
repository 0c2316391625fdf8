"""`files`: distilled sets a user made elsewhere, one per (dataset, IPC), found by a path template.

Accepted layouts (local path or any pyarrow URI such as s3://):
- a folder with `images.pt` (N×C×H×W) and optional `labels.pt` ((N,) hard or (N, K) soft) and
  `lr.pt` (a scalar); a `meta.json` from `save_distilled` adds its synth_seconds/device;
- a `.pt` file holding the images tensor, or a dict with keys images/labels/lr;
- a `.npz` file with keys images, optional labels, optional lr;
- an ImageFolder: one subfolder per class (named like the dataset's classes, or by class index,
  or anything sorting in class order) of PNG/JPEG images of the dataset's size.
Tensors are read with `weights_only=True`, arrays with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.fs as pafs
import torch
from pydantic import Field, field_validator

from ddray.errors import InputError
from ddray.methods.registry import register_method
from ddray.methods.types import DistilledSet, MethodParams, SynthContext
from ddray.methods.validate import check_set
from ddray.store.fs import Location, is_file, kind, listdir, open_location, read_buffer

if TYPE_CHECKING:
    from ddray.data import DatasetMeta, RealData

PLACEHOLDERS = ("ipc", "dataset")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
EXPECTED = ("a folder with images.pt [labels.pt] [lr.pt], a .pt or .npz file (images[, labels, lr]), "
            "or an ImageFolder of class subfolders")
_FIELD = re.compile(r"\{([^{}]*)\}")


class FilesParams(MethodParams):
    files: str = Field(description="path or URI template of one set, with {ipc} and {dataset} placeholders, "
                       "e.g. /data/my-method/{dataset}/ipc{ipc}/")
    normalized: bool = Field(True, description="true: tensors are already normalized with the dataset's mean/std "
                             "(as ddray's real data); false: pixels in [0, 1], ddray normalizes them. "
                             "ImageFolder images are always pixels.")

    @field_validator("files")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        bad = [m for m in _FIELD.findall(v) if m not in PLACEHOLDERS]
        if bad:
            raise ValueError(f"unknown placeholder {{{bad[0]}}}; use {{ipc}} and {{dataset}}")
        return v


def expand(template: str, dataset: str, ipc: int) -> str:
    return template.replace("{ipc}", str(ipc)).replace("{dataset}", dataset)


def load_files(path: str, data: RealData, ipc: int, normalized: bool = True,
               fs: pafs.FileSystem | None = None) -> DistilledSet:
    """The user's set for (data, ipc) at `path` (a template or a concrete path), validated and
    normalized like `data`, on CPU."""
    ds, pixels = read_files(path, data, ipc, normalized, fs)
    if pixels:
        ds.images = _normalize(ds.images, data)
    return ds


def read_files(path: str, data: RealData | DatasetMeta, ipc: int, normalized: bool = True,
               fs: pafs.FileSystem | None = None) -> tuple[DistilledSet, bool]:
    """(the checked set, whether its images are [0, 1] pixels still to normalize).

    Every check needs only the dataset's meta, so spec validation calls this on each set before
    the real data, a teacher or anything else is loaded or trained.
    """
    where = expand(path, data.name, ipc)
    loc = open_location(where, fs, field=where)
    ftype = kind(loc, loc.root)
    if ftype == pafs.FileType.NotFound:
        raise InputError(f"not found; expected {EXPECTED}", path=where)
    if ftype == pafs.FileType.File:
        if loc.root.endswith(".npz"):
            return _npz(loc, data, ipc, normalized)
        if loc.root.endswith(".pt"):
            return _pt_file(loc, data, ipc, normalized)
        raise InputError(f"unsupported file type; expected {EXPECTED}", path=where)
    if is_file(loc, loc.join("images.pt")):
        return _pt_folder(loc, data, ipc, normalized)
    if any(i.type == pafs.FileType.Directory for i in listdir(loc, loc.root)):
        return _image_folder(loc, data, ipc)
    raise InputError(f"no images.pt and no class subfolders; expected {EXPECTED}", path=where)


def _torch_load(loc: Location, p: str, shown: str) -> Any:
    try:
        return torch.load(read_buffer(loc, p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, or a pickle that is more than tensors
        raise InputError(f"cannot read as a tensor file (weights_only): {type(e).__name__}: {e}", path=shown) from e


def _finish(images: Any, labels: Any, lr: Any, data: RealData | DatasetMeta, ipc: int, normalized: bool,
            where: dict[str, str]) -> tuple[DistilledSet, bool]:
    ds = check_set(images, labels, lr, data, ipc, where)
    if not normalized:  # [0, 1] pixels: refuse 0..255 or already-normalized values
        lo, hi = float(ds.images.min()), float(ds.images.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InputError(f"normalized: false expects pixel values in [0, 1]; found [{lo:.3g}, {hi:.3g}]",
                             path=where["images"])
    return ds, not normalized


def _normalize(x: torch.Tensor, data: RealData) -> torch.Tensor:
    """[0, 1] pixels -> normalized like the real data."""
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def _pt_folder(loc: Location, data: RealData | DatasetMeta, ipc: int, normalized: bool) -> tuple[DistilledSet, bool]:
    shown = {name: loc.shown(f"{name}.pt") for name in ("images", "labels", "lr")}
    parts = {name: _torch_load(loc, loc.join(f"{name}.pt"), shown[name])
             for name in ("images", "labels", "lr") if is_file(loc, loc.join(f"{name}.pt"))}
    ds, pixels = _finish(parts["images"], parts.get("labels"), parts.get("lr"), data, ipc, normalized, shown)
    meta = loc.join("meta.json")
    if is_file(loc, meta):  # a set ddray saved itself: keep its own time-to-synthesize
        info = json.load(read_buffer(loc, meta))
        ds.synth_seconds, ds.device = info.get("synth_seconds"), info.get("device")
    return ds, pixels


def _pt_file(loc: Location, data: RealData | DatasetMeta, ipc: int, normalized: bool) -> tuple[DistilledSet, bool]:
    where = loc.uri
    obj = _torch_load(loc, loc.root, where)
    if isinstance(obj, dict):
        if "images" not in obj:
            raise InputError(f"dict has keys {sorted(obj)}; expected images[, labels, lr]", path=where)
        images, labels, lr = obj["images"], obj.get("labels"), obj.get("lr")
    else:
        images, labels, lr = obj, None, None
    return _finish(images, labels, lr, data, ipc, normalized, dict.fromkeys(("images", "labels", "lr"), where))


def _npz(loc: Location, data: RealData | DatasetMeta, ipc: int, normalized: bool) -> tuple[DistilledSet, bool]:
    where = loc.uri
    try:
        with np.load(read_buffer(loc, loc.root), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise InputError(f"cannot read as .npz (no pickles allowed): {type(e).__name__}: {e}", path=where) from e
    if "images" not in arrays:
        raise InputError(f"has keys {sorted(arrays)}; expected images[, labels, lr]", path=where)
    return _finish(arrays["images"], arrays.get("labels"), arrays.get("lr"), data, ipc, normalized,
                   dict.fromkeys(("images", "labels", "lr"), where))


def _class_index(names: list[str], data: RealData | DatasetMeta, where: str) -> list[int]:
    """Folder names -> class ids: the dataset's class names, else integers, else sorted order."""
    if all(n in data.classes for n in names):
        return [data.classes.index(n) for n in names]
    if all(n.isdigit() for n in names):
        ids = [int(n) for n in names]
        if max(ids) < data.num_classes:
            return ids
    if len(names) == data.num_classes:
        return list(range(len(names)))
    raise InputError(f"has {len(names)} class folders ({', '.join(names[:5])}...); expected {data.num_classes} "
                     f"named like the classes of {data.name} ({', '.join(data.classes[:5])}...) or by index", path=where)


def _image_folder(loc: Location, data: RealData | DatasetMeta, ipc: int) -> tuple[DistilledSet, bool]:
    from PIL import Image

    where = loc.uri
    c, h, w = data.image_shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise InputError(f"ImageFolder sets need 1- or 3-channel data; {data.name} has {c} channels", path=where)
    folders = [i for i in listdir(loc, loc.root) if i.type == pafs.FileType.Directory]
    ids = _class_index([f.base_name for f in folders], data, where)
    pixels, labels = [], []
    for folder, cls in zip(folders, ids):
        for info in listdir(loc, folder.path):
            if info.type != pafs.FileType.File or not info.base_name.lower().endswith(IMAGE_SUFFIXES):
                continue
            shown = loc.shown(folder.base_name, info.base_name)
            try:
                img = Image.open(read_buffer(loc, info.path)).convert(mode)
            except Exception as e:
                raise InputError(f"cannot decode image: {e}", path=shown) from e
            if img.size != (w, h):
                raise InputError(f"image is {img.size[0]}×{img.size[1]}; expected {w}×{h} like {data.name}", path=shown)
            arr = np.asarray(img, dtype=np.uint8)
            pixels.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(cls)
    if not pixels:
        raise InputError(f"class folders hold no images ({', '.join(IMAGE_SUFFIXES)})", path=where)
    unit = torch.from_numpy(np.stack(pixels)).float().div_(255.0)
    return _finish(unit, torch.tensor(labels), None, data, ipc, False, dict.fromkeys(("images", "labels", "lr"), where))


@register_method("files", FilesParams, timed=False)
def synth_files(ctx: SynthContext) -> DistilledSet:
    """A user's own distilled set per (dataset, IPC): tensors, .npz or an ImageFolder."""
    p: FilesParams = ctx.params  # type: ignore[assignment]
    return load_files(p.files, ctx.data, ctx.ipc, p.normalized).to(ctx.device)
