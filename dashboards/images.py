"""Small previews made on the server: thumbnails of catalog images and crops of segments, as
PNG data URIs (so a page never asks for a file it cannot have). Files are opened only when
they lie under the root their ingest batch recorded (links resolved first) and hold at most
`max_pixels` pixels; anything unreadable gives None and the page says "no preview"."""
from __future__ import annotations

import base64
import io
import logging
from typing import Optional, Sequence

from PIL import Image as PILImage
from PIL import ImageDraw

from knnclip_core.catalog.queries import inside_root

logger = logging.getLogger(__name__)

THUMB_SIDE = 160  # longer side of a quarantine thumbnail
CROP_SIDE = 96  # longer side of a segment crop
CROP_MARGIN = 0.15  # context kept around a segment's box, as a share of its size


def _open(root: str, path: str, max_pixels: int) -> Optional[PILImage.Image]:
    """The RGB image at `path` when it is a readable image under `root` of at most `max_pixels`."""
    full = inside_root(root, path)
    if full is None:
        return None
    try:
        with PILImage.open(full) as im:
            if im.size[0] * im.size[1] > max_pixels:
                return None
            if im.format == "JPEG" and max(im.size) > 4 * THUMB_SIDE:
                im.draft("RGB", (im.size[0] // 2, im.size[1] // 2))  # decode at a smaller scale
            return im.convert("RGB")
    except Exception:  # noqa: BLE001 - a truncated or foreign file has no preview
        logger.debug("no preview of %s", full, exc_info=True)
        return None


def data_uri(im: PILImage.Image) -> str:
    """'data:image/png;base64,...' of `im`."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumbnail(root: str, path: str, max_pixels: int, side: int = THUMB_SIDE) -> Optional[str]:
    """Data URI of the image at `path` (relative to `root` or absolute under it) shrunk to `side`, or None."""
    im = _open(root, path, max_pixels)
    if im is None:
        return None
    im.thumbnail((side, side))
    return data_uri(im)


def crop(source: dict, max_pixels: int, side: int = CROP_SIDE, cache: Optional[dict] = None) -> Optional[str]:
    """Data URI of a segment's box (with some context and the box outlined) from a
    `segment_sources` entry, or None. `cache` (path -> image) avoids opening one file twice."""
    key = source["image_path"]
    if cache is not None and key in cache:
        im = cache[key]
    else:
        im = _open(source["root"], key, max_pixels)
        if cache is not None:
            cache[key] = im
    if im is None:
        return None
    x, y, w, h = (int(v) for v in source["bbox"])
    sx, sy = im.size[0] / max(1, source.get("width") or im.size[0]), im.size[1] / max(1, source.get("height") or im.size[1])
    x, y, w, h = x * sx, y * sy, max(1.0, w * sx), max(1.0, h * sy)
    mx, my = w * CROP_MARGIN + 2, h * CROP_MARGIN + 2
    box = (max(0, int(x - mx)), max(0, int(y - my)), min(im.size[0], int(x + w + mx) + 1),
           min(im.size[1], int(y + h + my) + 1))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    part = im.crop(box)
    ImageDraw.Draw(part).rectangle(_shift((x, y, x + w - 1, y + h - 1), box[:2]), outline=(255, 214, 0), width=2)
    part.thumbnail((side, side))
    if max(part.size) < side // 2:  # tiny segments are shown bigger, pixels kept sharp
        scale = (side // 2) / max(part.size)
        part = part.resize((max(1, int(part.size[0] * scale)), max(1, int(part.size[1] * scale))), PILImage.NEAREST)
    return data_uri(part)


def _shift(rect: Sequence[float], origin: Sequence[int]) -> tuple:
    return (rect[0] - origin[0], rect[1] - origin[1], rect[2] - origin[0], rect[3] - origin[1])


def crops(sources: dict, ids: Sequence[str], max_pixels: int) -> dict[str, Optional[str]]:
    """{segment id: data URI or None} for `ids` (those missing from `sources` give None)."""
    cache: dict = {}
    return {i: (crop(sources[i], max_pixels, cache=cache) if i in sources else None) for i in dict.fromkeys(ids)}
