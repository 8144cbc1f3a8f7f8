"""Images out of a SegmentationResult: label map PNG, colour overlay PNG, and image decoding
with size limits (shared by the CLI and the HTTP service)."""
from __future__ import annotations

import io
import logging
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import InputError

logger = logging.getLogger(__name__)

UNKNOWN_VALUE_U8 = 255  # label map value of unknown / uncovered pixels (uint8 maps)


def palette(n: int, seed: int = 7) -> np.ndarray:
    """(n + 1, 3) uint8 colours: one per class, the last (unknown) black. Deterministic."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 256, size=(n, 3)).astype(np.uint8)
    return np.vstack([colours, np.zeros((1, 3), np.uint8)])


def label_map_image(label_map: np.ndarray, n_classes: int) -> Image.Image:
    """Label map as a PNG-ready image: 8-bit (255 = unknown) up to 255 classes, else 16-bit
    (65535 = unknown). Pixel value = index into the result's `classes`."""
    if n_classes < UNKNOWN_VALUE_U8:
        return Image.fromarray(np.where(label_map < 0, UNKNOWN_VALUE_U8, label_map).astype(np.uint8))
    return Image.fromarray(np.where(label_map < 0, 65535, label_map).astype(np.uint16))


def overlay_image(image: np.ndarray, label_map: np.ndarray, n_classes: int, alpha: float = 0.5) -> Image.Image:
    """The image blended with one colour per class (unknown pixels left as they are)."""
    colours = palette(n_classes)[np.where(label_map < 0, n_classes, label_map)]
    known = (label_map >= 0)[..., None]
    mixed = np.where(known, (1 - alpha) * image + alpha * colours, image)
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


def png_bytes(im: Image.Image) -> bytes:
    """PNG encoding of a PIL image."""
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def decode_image(data: bytes, max_pixels: Optional[int] = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from encoded image bytes; raises InputError when the bytes are not an
    image or it has more than `max_pixels` pixels (checked before decoding the pixels)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                raise InputError(f"the image has {w * h} pixels, more than the limit of {max_pixels}.")
            return np.asarray(im.convert("RGB"))
    except InputError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"the upload is not a readable image ({exc.__class__.__name__}).") from None


def read_image(path, max_pixels: Optional[int] = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) from an image file; raises InputError when missing or unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise InputError(f"cannot read image {path}.") from None
    return decode_image(data, max_pixels)
