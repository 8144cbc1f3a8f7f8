"""Images out of a SegmentationResult: label map PNG, colour overlay PNG, and image decoding
with size limits (shared by the CLI and the HTTP service)."""
from __future__ import annotations

import io
import logging
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..classnames import display_name
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


UNKNOWN_NAME = "unknown"  # the legend's name of segments below T (no base model) or of no asked class
UNKNOWN_GREY, UNKNOWN_STRIPE = (150, 150, 150), (50, 50, 50)  # unknown: grey with dark diagonal hatching
HATCH_PERIOD, HATCH_WIDTH = 6, 2  # pixels: a stripe where (x + y) % period < width


def hatch(h: int, w: int, y0: int = 0, x0: int = 0) -> np.ndarray:
    """(h, w) bool: the dark stripes of the unknown hatching (anchored to image coordinates)."""
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w]
    return (xx + yy) % HATCH_PERIOD < HATCH_WIDTH


def unknown_mask(result) -> np.ndarray:
    """(H, W) bool: pixels a segment covers whose label is unknown (uncovered pixels are not)."""
    covered = np.zeros(result.label_map.shape, bool)
    for s in result.segments:
        covered |= s.mask
    return covered & (result.label_map < 0)


def overlay_image(image: np.ndarray, label_map: np.ndarray, n_classes: int, alpha: float = 0.5,
                  unknown: Optional[np.ndarray] = None) -> Image.Image:
    """The image blended with one colour per class; `unknown` (H, W) bool pixels grey with dark
    diagonal hatching; pixels of no segment left as they are."""
    colours = palette(n_classes)[np.where(label_map < 0, n_classes, label_map)]
    known = (label_map >= 0)[..., None]
    mixed = np.where(known, (1 - alpha) * image + alpha * colours, image)
    if unknown is not None and unknown.any():
        shade = np.where(hatch(*label_map.shape)[..., None], UNKNOWN_STRIPE, UNKNOWN_GREY)
        mixed = np.where(unknown[..., None], (1 - alpha) * image + alpha * shade, mixed)
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))


LEGEND_PAD, LEGEND_SWATCH, LEGEND_ROW = 4, 10, 14  # pixels


def draw_legend(im: Image.Image, label_map: np.ndarray, classes: list[str],
                unknown: Optional[np.ndarray] = None) -> Image.Image:
    """A copy of overlay `im` with a legend in its top-left corner: one row (colour swatch as in
    `overlay_image`, class name) per class present in `label_map`, then an `unknown` row with
    the hatched swatch when `unknown` has a pixel, on a dark box; rows that do not fit the
    image's height are left out (the unknown row is kept). Returns the image (same size)."""
    present = [int(c) for c in np.unique(label_map) if 0 <= c < len(classes)]
    out = im.convert("RGB").copy()
    has_unknown = unknown is not None and bool(unknown.any())
    if not present and not has_unknown:
        return out
    colours = palette(len(classes))
    font = ImageFont.load_default()
    draw = ImageDraw.Draw(out, "RGBA")
    fit = max(0, (out.height - 2 * LEGEND_PAD) // LEGEND_ROW)
    rows = present[:max(fit - has_unknown, 0)] + ([-1] if has_unknown and fit else [])
    names = {c: display_name(classes[c]) if c >= 0 else UNKNOWN_NAME for c in rows}  # `a|b` labels: first name
    width = LEGEND_SWATCH + 3 * LEGEND_PAD + max((int(draw.textlength(names[c], font=font)) for c in rows), default=0)
    draw.rectangle([0, 0, min(width, out.width - 1), 2 * LEGEND_PAD + LEGEND_ROW * len(rows)], fill=(0, 0, 0, 170))
    for k, c in enumerate(rows):
        y = LEGEND_PAD + k * LEGEND_ROW
        box = [LEGEND_PAD, y, LEGEND_PAD + LEGEND_SWATCH - 1, y + LEGEND_SWATCH - 1]
        if c >= 0:
            draw.rectangle(box, fill=tuple(int(v) for v in colours[c]))
        else:
            swatch = np.where(hatch(LEGEND_SWATCH, LEGEND_SWATCH, y, LEGEND_PAD)[..., None], UNKNOWN_STRIPE,
                              UNKNOWN_GREY).astype(np.uint8)
            out.paste(Image.fromarray(swatch), (LEGEND_PAD, y))
        draw.text((2 * LEGEND_PAD + LEGEND_SWATCH, y - 1), names[c], fill=(255, 255, 255), font=font)
    return out


def legend_overlay(image: np.ndarray, label_map: np.ndarray, classes: list[str],
                   unknown: Optional[np.ndarray] = None) -> Image.Image:
    """The colour overlay of `label_map` on `image` (`unknown` pixels hatched grey) with the
    legend of the classes present and of `unknown`."""
    return draw_legend(overlay_image(image, label_map, len(classes), unknown=unknown), label_map, list(classes),
                       unknown)


def result_overlay(image: np.ndarray, result) -> Image.Image:
    """`legend_overlay` of a SegmentationResult: its unknown segments hatched and in the legend."""
    return legend_overlay(image, result.label_map, list(result.classes), unknown_mask(result))


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
