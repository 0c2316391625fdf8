"""`files`: distilled sets a user made elsewhere, one per (dataset, IPC), found by a path template.

Accepted layouts (local path or any pyarrow URI such as s3://):
- a folder with `images.pt` (N×C×H×W) and optional `labels.pt` ((N,) hard or (N, K) soft) and
  `lr.pt` (a scalar), as DD-Ranking reads them, or MTT's own names (`images_best.pt`,
  `labels_best.pt`, `syn_lr_best.pt` or `lr_best.pt`); a `meta.json` from `save_distilled` adds
  its synth_seconds/device;
- a `.pt` file holding the images tensor, or a dict with keys images/labels/lr;
- a `.npz` file with keys images, optional labels, optional lr;
- an ImageFolder as SRe2L and RDED release their sets: one subfolder per class, named like the
  dataset's classes (ImageNet's wnids) or by class index (`new000`, `00000`), of PNG/JPEG images
  of the dataset's size (`ddray.methods.class_folders`).
Tensors are read with `weights_only=True`, arrays with `allow_pickle=False`.

A learned learning rate shipped with a set is never read and dropped: the `lr` param says whether
the syn arm trains with it (`set`) or with the protocol's (`protocol`), and a set that ships one
while `lr` is unset is an InputError asking for that choice.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow.fs as pafs
import torch
from pydantic import Field, field_validator

from ddray.data.zca import Whitening
from ddray.errors import InputError
from ddray.methods.class_folders import match_class_folders
from ddray.methods.contract import DistilledSet, MethodParams, SynthContext
from ddray.methods.registry import register_method
from ddray.methods.validate import check_set
from ddray.store.fs import Location, is_file, kind, listdir, open_location, read_buffer

if TYPE_CHECKING:
    from ddray.data import DatasetMeta, RealData

PLACEHOLDERS = ("ipc", "dataset")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
EXPECTED = ("a folder with images.pt [labels.pt] [lr.pt] (or MTT's images_best.pt ...), a .pt or .npz file "
            "(images[, labels, lr]), or an ImageFolder of class subfolders")
# File names of a tensor folder, per part: DD-Ranking's, then MTT's (`syn_lr_best.pt`) and DATM's (`lr_best.pt`).
TENSOR_FILES = {"images": ("images.pt", "images_best.pt"), "labels": ("labels.pt", "labels_best.pt"),
                "lr": ("lr.pt", "lr_best.pt", "syn_lr_best.pt")}
LrSource = Literal["protocol", "set"]
_FIELD = re.compile(r"\{([^{}]*)\}")


class FilesParams(MethodParams):
    files: str = Field(description="path or URI template of one set, with {ipc} and {dataset} placeholders, "
                       "e.g. /data/my-method/{dataset}/ipc{ipc}/")
    normalized: bool = Field(True, description="true: tensors are already normalized with the dataset's mean/std "
                             "(as ddray's real data); false: pixels in [0, 1], ddray normalizes them. "
                             "ImageFolder images are always pixels.")
    lr: LrSource | None = Field(None, description="learning rate of the syn arm when the set ships one (lr.pt, an "
                                "lr entry): 'set' trains the syn arm with the set's own lr, as DD-Ranking evaluates "
                                "MTT-style sets (the rdm arm always keeps the protocol's lr); 'protocol' trains it with "
                                "the protocol's lr like every other arm. Unset: the protocol's, and a set that ships an "
                                "lr is an error asking for this choice (a learned lr is never silently dropped)")

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
               fs: pafs.FileSystem | None = None, lr: LrSource | None = None) -> DistilledSet:
    """The user's set for (data, ipc) at `path` (a template or a concrete path), validated and
    normalized like `data`, on CPU.

    `lr` is the `files` param of that name: the returned set carries an lr only with `lr="set"`.
    """
    ds, pixels, lr_file = _read(path, data, ipc, normalized, fs)
    if pixels:
        ds.images = _normalize(ds.images, data)
    return with_lr_choice(ds, lr, lr_file)


def read_files(path: str, data: RealData | DatasetMeta, ipc: int, normalized: bool = True,
               fs: pafs.FileSystem | None = None) -> tuple[DistilledSet, bool]:
    """(the checked set, whether its images are [0, 1] pixels still to normalize).

    Every check needs only the dataset's meta, so spec validation calls this on each set before
    the real data, a teacher or anything else is loaded or trained.
    """
    ds, pixels, _ = _read(path, data, ipc, normalized, fs)
    return ds, pixels


def _read(path: str, data: RealData | DatasetMeta, ipc: int, normalized: bool,
          fs: pafs.FileSystem | None) -> tuple[DistilledSet, bool, str]:
    """(set, images still [0, 1] pixels, where an lr would come from) of the set at `path`."""
    where = expand(path, data.name, ipc)
    loc = open_location(where, fs, field=where)
    ftype = kind(loc, loc.root)
    if ftype == pafs.FileType.NotFound:
        raise InputError(f"not found; expected {EXPECTED}", path=where)
    if ftype == pafs.FileType.File:
        if loc.root.endswith(".npz"):
            return (*_npz(loc, data, ipc, normalized), where)
        if loc.root.endswith(".pt"):
            return (*_pt_file(loc, data, ipc, normalized), where)
        raise InputError(f"unsupported file type; expected {EXPECTED}", path=where)
    if (names := tensor_files(loc)) is not None:
        lr_file = loc.shown(names.get("lr", TENSOR_FILES["lr"][0]))
        return (*_pt_folder(loc, names, data, ipc, normalized), lr_file)
    if any(i.type == pafs.FileType.Directory for i in listdir(loc, loc.root)):
        return (*_image_folder(loc, data, ipc), where)
    raise InputError(f"no images.pt and no class subfolders; expected {EXPECTED}", path=where)


def with_lr_choice(ds: DistilledSet, choice: LrSource | None, shown: str) -> DistilledSet:
    """`ds` carrying the lr the syn arm trains with: the set's (`set`), or none (the protocol's)."""
    if choice == "set":
        if ds.lr is None:
            raise InputError("lr: set, but this set ships no learning rate (no lr.pt / lr entry); "
                             "remove `lr: set` to train with the protocol's lr", path=shown)
        return ds
    if ds.lr is not None and choice is None:
        raise InputError(lr_choice_message(ds.lr), path=shown)
    ds.lr = None  # lr: protocol — the user chose the protocol's lr over the set's
    return ds


def lr_choice_message(lr: float | None) -> str:
    """Why a set that ships its own lr needs the `lr` param, and the two values it takes."""
    value = f" ({lr:g})" if lr is not None else ""
    return (f"the set ships its own learning rate{value}; say which lr its syn arm trains with: add `lr: set` "
            "to the method (DD-Ranking's evaluation: the set's lr for the syn arm, the protocol's for the random "
            "arm) or `lr: protocol` (the protocol's lr for every arm)")


def tensor_files(loc: Location) -> dict[str, str] | None:
    """The tensor files of a folder by part (images/labels/lr -> file name), or None if it holds no images.

    Two names for one part (images.pt beside images_best.pt) is an error: which to read is a guess.
    """
    found: dict[str, str] = {}
    for part, names in TENSOR_FILES.items():
        present = [n for n in names if is_file(loc, loc.join(n))]
        if len(present) > 1:
            raise InputError(f"holds {' and '.join(present)}: keep one {part} file", path=loc.uri)
        if present:
            found[part] = present[0]
    return found if "images" in found else None


def ships_lr(path: str) -> bool | None:
    """Whether the set at local `path` ships a learning rate, found without reading its pixels.

    Cheap answers only, for `ddray validate`: a tensor folder's file names, an .npz's key list (its
    zip directory), a .pt file's keys through a memory map; an ImageFolder ships none. None when
    that cannot be told cheaply (an old non-zip .pt file, an unreadable file): the trial tells.
    """
    loc = open_location(path, field=path)
    ftype = kind(loc, loc.root)
    if ftype == pafs.FileType.Directory:
        names = tensor_files(loc)  # InputError when a part has two files
        return names is not None and "lr" in names
    if ftype != pafs.FileType.File:
        return None
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                return "lr" in z.files
        if path.endswith(".pt"):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return isinstance(obj, dict) and "lr" in obj
    except Exception:  # noqa: BLE001  the trial reads the file and names what is wrong with it
        return None
    return None


def _torch_load(loc: Location, p: str, shown: str) -> Any:
    buf = read_buffer(loc, p)  # a failed read (dropped connection) propagates: transient, so retried
    try:
        return torch.load(buf, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # parsing bytes in memory: corrupt file, or a pickle that is more than tensors
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
    """[0, 1] pixels -> the real data's network input: normalized, or whitened under a ZCA protocol."""
    if isinstance(data.pixels, Whitening):
        return data.pixels.whiten(x.float()).contiguous()
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


def _pt_folder(loc: Location, names: dict[str, str], data: RealData | DatasetMeta, ipc: int,
               normalized: bool) -> tuple[DistilledSet, bool]:
    shown = {part: loc.shown(names.get(part, files[0])) for part, files in TENSOR_FILES.items()}
    parts = {part: _torch_load(loc, loc.join(name), shown[part]) for part, name in names.items()}
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
    buf = read_buffer(loc, loc.root)  # a failed read propagates (transient); what follows is the file's
    try:
        with np.load(buf, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except MemoryError:
        raise
    except Exception as e:
        raise InputError(f"cannot read as .npz (no pickles allowed): {type(e).__name__}: {e}", path=where) from e
    if "images" not in arrays:
        raise InputError(f"has keys {sorted(arrays)}; expected images[, labels, lr]", path=where)
    return _finish(arrays["images"], arrays.get("labels"), arrays.get("lr"), data, ipc, normalized,
                   dict.fromkeys(("images", "labels", "lr"), where))


def _image_folder(loc: Location, data: RealData | DatasetMeta, ipc: int) -> tuple[DistilledSet, bool]:
    from ddray.data.images import open_image

    where = loc.uri
    c, h, w = data.image_shape
    mode = {1: "L", 3: "RGB"}.get(c)
    if mode is None:
        raise InputError(f"ImageFolder sets need 1- or 3-channel data; {data.name} has {c} channels", path=where)
    folders = [i for i in listdir(loc, loc.root) if i.type == pafs.FileType.Directory]
    mapping = match_class_folders([f.base_name for f in folders], data.classes, data.name, where.rstrip("/"))
    # The worker's log says how labels were made: one line, read when a number looks wrong.
    print(f"ddray: files {where}: {mapping.describe(data.classes, data.name)}", file=sys.stderr, flush=True)
    pixels, labels = [], []
    for folder, cls in zip(folders, mapping.ids):
        for info in listdir(loc, folder.path):
            if info.type != pafs.FileType.File or not info.base_name.lower().endswith(IMAGE_SUFFIXES):
                continue
            shown = loc.shown(folder.base_name, info.base_name)
            buf = read_buffer(loc, info.path)  # a failed read (permission, connection) propagates: not a bad file
            try:  # decoding bytes in memory: any failure is the file's
                img = open_image(buf, mode)
            except (OSError, ValueError, SyntaxError) as e:
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
    return load_files(p.files, ctx.data, ctx.ipc, p.normalized, lr=p.lr).to(ctx.device)
