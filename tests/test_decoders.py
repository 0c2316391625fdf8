"""Images read right or refused by name, and a transient failure never stored as a bad input.

Real files in real formats, written here: 16-bit PNGs, float TIFFs, symlinks, an image over the
decompression-bomb limit; real torch and safetensors files.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddray.data import NodeCache, clear_cache, load_dataset
from ddray.engine.weights import read_state_dict
from ddray.errors import InputError
from ddray.methods.files import read_files


def folder_of(root: Path, images: dict[str, list[Image.Image]], fmt: str = "PNG") -> Path:
    for split in ("train", "val"):
        for cls, ims in images.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i, im in enumerate(ims):
                im.save(root / split / cls / f"{i}.{fmt.lower()}", format=fmt)
    return root


def _load(root: Path, tmp_path: Path):
    clear_cache()
    return load_dataset("imagefolder", root, cache=NodeCache(tmp_path / "cache"), image_size=8)


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    values = {"a": 0x1000, "b": 0x8000, "c": 0xFFFF}  # 16-bit greyscale: PIL's convert("RGB") made all 255
    ims = {c: [Image.fromarray(np.full((8, 8), v, np.uint16))] for c, v in values.items()}
    assert ims["a"][0].mode == "I;16"
    data = _load(folder_of(tmp_path / "d", ims), tmp_path)
    got = data.train.tensor()[:, 0, 0, 0].tolist()
    assert got == [round(v * 255 / 65535) for v in values.values()] == [16, 128, 255]


def test_a_32_bit_float_image_is_refused_by_name(tmp_path):
    ims = {c: [Image.fromarray(np.full((8, 8), 0.5, np.float32))] for c in "ab"}
    data = _load(folder_of(tmp_path / "d", ims, fmt="TIFF"), tmp_path)
    with pytest.raises(InputError, match=r"32-bit float pixels \(PIL mode F\)"):
        data.train.tensor()


def test_an_image_over_the_decompression_bomb_limit_is_a_named_input_error(tmp_path, monkeypatch):
    ims = {"a": [Image.new("RGB", (40, 40))], "b": [Image.new("RGB", (50, 50))]}
    root = folder_of(tmp_path / "d", ims)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL itself only warns up to twice the limit
    with pytest.raises(InputError) as e:
        _load(root, tmp_path).train.tensor()
    assert "0.png: is 40×40 = 1,600 pixels, over the decompression-bomb limit of 1,000" in str(e.value)
    assert "MAX_IMAGE_PIXELS = 1,000" in str(e.value)  # 50×50: past twice the limit, PIL's own refusal


def _rgb(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(n)]


def test_a_symlink_loop_in_train_is_refused_not_read_as_a_class(tmp_path):
    root = folder_of(tmp_path / "d", {"a": _rgb(2), "b": _rgb(2)})
    os.symlink(root / "train", root / "train" / "0loop")  # sorts first: every label would shift by one
    with pytest.raises(InputError, match="symlink to .*a loop in"):
        _load(root, tmp_path)
    (root / "train" / "0loop").unlink()
    os.symlink(root / "train" / "a", root / "train" / "b" / "back")
    os.symlink(root / "train" / "b", root / "train" / "a" / "back")
    with pytest.raises(InputError, match="symlink to .*a loop in"):
        _load(root, tmp_path)


def test_a_symlink_out_of_the_dataset_is_refused_and_one_inside_is_followed(tmp_path):
    root = folder_of(tmp_path / "d", {"a": _rgb(2), "b": _rgb(2)})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "x.png")
    os.symlink(outside / "x.png", root / "train" / "a" / "x.png")
    with pytest.raises(InputError, match="x.png is a symlink to .*, outside"):
        _load(root, tmp_path)
    (root / "train" / "a" / "x.png").unlink()
    os.symlink(root / "train" / "b" / "0.png", root / "train" / "a" / "x.png")  # inside train/: followed
    assert len(_load(root, tmp_path).train) == 5


# ----------------------------------------------------------------------------- transient vs deterministic

def _eio(*args, **kwargs):
    raise OSError(errno.EIO, "Input/output error")


def test_a_failed_read_of_a_checkpoint_propagates_and_a_corrupt_one_is_a_bad_input(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(2)}, path)
    with monkeypatch.context() as m:
        m.setattr(Path, "read_bytes", _eio)       # a dropped network mount: retried, not "bad input"
        with pytest.raises(OSError) as e:
            read_state_dict(path)
        assert not isinstance(e.value, InputError)
    with monkeypatch.context() as m:
        def oom(*a, **k):
            raise MemoryError
        m.setattr(torch, "load", oom)             # out of memory is the node's, not the file's
        with pytest.raises(MemoryError):
            read_state_dict(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        read_state_dict(path)
    path.write_bytes(b"")
    path.chmod(0)
    if not os.access(path, os.R_OK):              # root reads anything
        with pytest.raises(InputError, match="permission denied"):
            read_state_dict(path)


def test_a_failed_read_of_a_files_set_propagates(tmp_path, monkeypatch):
    import ddray.methods.files as files
    from ddray.data.real_data import DatasetMeta

    (tmp_path / "set").mkdir()
    torch.save(torch.zeros(2, 1, 8, 8), tmp_path / "set" / "images.pt")
    meta = DatasetMeta("d", 2, (1, 8, 8), [5, 5], ["a", "b"])

    def dropped(loc, path):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(files, "read_buffer", dropped)
    with pytest.raises(ConnectionResetError):
        read_files(str(tmp_path / "set"), meta, 1)
