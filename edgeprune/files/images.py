"""Reading one image file as uint8 pixels of a given size and channel count (Pillow)."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from edgeprune.errors import EdgepruneError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
RESIZES = ("stretch", "center-crop")


def read_image(
    path: str | os.PathLike,
    channels: int,
    size: tuple[int, int],
    resize: str = "stretch",
    error: Callable[[str], EdgepruneError] = EdgepruneError,
) -> np.ndarray:
    """uint8 pixels, (C, H, W): converted to grey (1 channel) or RGB (3), resized to ``size``
    (H, W) by stretching or by scaling the short side and cropping the centre."""
    from PIL import Image

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise error(f"images can feed a model with 1 or 3 input channels, not {channels}")
    h, w = size
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if resize == "center-crop":
                scale = max(h / img.height, w / img.width)
                nw, nh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
                img = img.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - w) // 2, (nh - h) // 2
                img = img.crop((left, top, left + w, top + h))
            elif img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except OSError as err:
        raise error(f"{path}: not a readable image ({err})") from None
    return arr.reshape(h, w, channels).transpose(2, 0, 1)
