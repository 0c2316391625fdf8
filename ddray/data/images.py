"""Opening one image file as 8-bit RGB (or L): the one decode every loader and `files` set shares.

Why one place: PIL's `convert("RGB")` clips a 16-bit greyscale PNG (`I;16`) to all-255 without a
word, and decodes a 20000×20000 file into gigabytes before anyone checks its size. Here 16-bit
greyscale is scaled to 8 bits (v·255/65535, rounded), modes
that have no faithful 8-bit reading (32-bit integer or float pixels) are refused by name, and an
image over PIL's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`) is refused from its
header, before any pixel is decoded. Every refusal is a ValueError naming the reason, which the
loaders turn into their InputError naming the file: a bad input, not a retried crash.
"""

from __future__ import annotations

from typing import IO, Any

import numpy as np

SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
NO_8BIT = {"I": "32-bit integer", "F": "32-bit float", "I;32": "32-bit integer", "I;32B": "32-bit integer"}


def open_image(fp: str | Any | IO[bytes], mode: str = "RGB") -> Any:
    """The image at `fp` (a path or a file object) as a PIL image of `mode` ("RGB" or "L")."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        im = Image.open(fp)
    except Image.DecompressionBombError as e:
        raise ValueError(f"too large to decode: {e} (over twice the decompression-bomb limit, "
                         f"PIL.Image.MAX_IMAGE_PIXELS = {limit:,})") from None
    with im:
        w, h = im.size
        if limit is not None and w * h > limit:
            raise ValueError(f"is {w}×{h} = {w * h:,} pixels, over the decompression-bomb limit of {limit:,} "
                             "(PIL.Image.MAX_IMAGE_PIXELS); downscale the file or raise that limit")
        if im.mode in SIXTEEN_BIT or (im.mode == "I" and im.format == "PNG"):  # PNG 16-bit greyscale
            arr = np.asarray(im).astype(np.uint32)
            if arr.max(initial=0) > 0xFFFF or arr.min(initial=0) < 0:
                raise ValueError(f"has {im.mode} pixels outside 0..65535")
            im8 = Image.fromarray(((arr * 255 + 32767) // 65535).astype(np.uint8), mode="L")
            return im8.convert(mode)
        if im.mode in NO_8BIT:
            raise ValueError(f"has {NO_8BIT[im.mode]} pixels (PIL mode {im.mode}), which have no 8-bit reading: "
                             "save the images as 8- or 16-bit PNG or JPEG")
        return im.convert(mode)
