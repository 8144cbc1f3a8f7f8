"""Reading images for embedding: RGB, checked against the catalog's size, decoded no
larger than needed. PNGs decode with libspng (pyspng), about a quarter faster than
Pillow's decoder; 16-bit PNGs are scaled to 8 bits."""
from __future__ import annotations

import io
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import numpy as np

if TYPE_CHECKING:  # annotations only
    import PIL.Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@contextmanager
def open_rgb(path: str, expected_hw: Optional[tuple[int, int]] = None,
             draft_hw: Optional[tuple[int, int]] = None) -> Iterator["PIL.Image.Image"]:
    """Open an image file as an RGB PIL image (EXIF orientation ignored, as the catalog
    hashes bytes). ValueError when its size is not `expected_hw`; a JPEG is decoded at the
    smallest DCT scale that still covers `draft_hw` (h, w)."""
    from PIL import Image

    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(PNG_SIGNATURE):
        import pyspng

        im = Image.fromarray(pyspng.load(data, format="RGB"))
    else:
        im = Image.open(io.BytesIO(data))
    with im:
        if expected_hw is not None and im.size != (expected_hw[1], expected_hw[0]):
            raise ValueError(f"image is {im.size[0]}x{im.size[1]}, catalog says {expected_hw[1]}x{expected_hw[0]}")
        if draft_hw is not None and im.format == "JPEG":
            im.draft("RGB", (draft_hw[1], draft_hw[0]))
        yield im if im.mode == "RGB" else im.convert("RGB")


def read_rgb(path: str) -> np.ndarray:
    """Image file -> HxWx3 uint8 RGB array at full size."""
    with open_rgb(path) as im:
        return np.asarray(im)
