"""Facts about each image and segment of a batch: what validation judges.

`inspect_item` opens the image (header first, so that oversized images are never
decoded), hashes it, decodes it fully, and measures every segment mask. The facts are
plain columns; the Great Expectations suite (suite.py) turns them into verdicts.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from ..hashing import sha256_file
from ..readers.base import ImageItem

logger = logging.getLogger(__name__)
Image.MAX_IMAGE_PIXELS = None  # our own limit (max_pixels) is checked before decoding


@dataclass
class SegmentFacts:
    row_id: str            # unique within the batch (image row id + index)
    source: str
    source_id: str
    label: str
    class_name: Optional[str]
    is_thing: Optional[bool]
    reader_reason: str     # reason code the reader found, or ""
    reader_message: str
    area: int = 0
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    rle: str = ""          # COCO compressed RLE counts


@dataclass
class ImageFacts:
    row_id: str
    item: str              # what messages name: the file as the source gives it
    path: str              # absolute path
    source_id: str
    reader_reason: str = ""
    reader_message: str = ""
    inside_root: bool = True
    exists: bool = True
    is_image: bool = True
    decodes: bool = True
    decode_error: str = ""
    width: int = 0
    height: int = 0
    pixels: int = 0
    size_match: bool = True
    size_detail: str = ""
    sha256: str = ""
    bytes: int = 0
    skipped_crowd: int = 0
    segments: list[SegmentFacts] = field(default_factory=list)

    def image_row(self) -> dict:
        keys = ("row_id", "item", "source_id", "inside_root", "exists", "is_image", "decodes", "pixels", "size_match")
        return {k: getattr(self, k) for k in keys} | {"reader_ok": not self.reader_reason}

    def segment_rows(self) -> list[dict]:
        h, w = self.height, self.width
        return [{
            "row_id": s.row_id, "image_row_id": self.row_id, "source_id": s.source_id or s.row_id,
            "reader_ok": not s.reader_reason, "class_known": s.class_name is not None, "area": s.area,
            "area_le_pixels": s.area <= self.pixels,
            "bbox_inside": s.bbox[0] >= 0 and s.bbox[1] >= 0 and s.bbox[0] + s.bbox[2] <= w and s.bbox[1] + s.bbox[3] <= h,
        } for s in self.segments]


def path_inside(path: Path, root: Path, rel_path: str) -> bool:
    """True when `rel_path` has no '..' part and `path` resolves (symlinks too) inside `root`."""
    if ".." in Path(rel_path).parts or os.path.isabs(rel_path):
        return False
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def encode_mask(mask: np.ndarray) -> tuple[str, int, tuple[int, int, int, int]]:
    """(RLE counts, area, bbox xywh) of a bool mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(rle))
    return rle["counts"].decode("ascii"), area, (x, y, w, h)


def inspect_item(item: ImageItem, root: Path, row_id: str, max_pixels: int) -> ImageFacts:
    """Facts of one image item and its segments. Never raises on bad input."""
    facts = ImageFacts(row_id=row_id, item=item.rel_path, path=str(item.image_path), source_id=item.source_id,
                       skipped_crowd=item.skipped_crowd)
    if item.errors:
        facts.reader_reason, facts.reader_message = item.errors[0]
    facts.inside_root = path_inside(item.image_path, root, item.rel_path)
    if not facts.inside_root:
        return facts  # never open files outside the root
    if not item.image_path.is_file():
        facts.exists = False
        return facts
    try:
        with Image.open(item.image_path) as im:
            facts.width, facts.height = im.size
            facts.pixels = facts.width * facts.height
            if facts.pixels <= max_pixels:
                facts.sha256, facts.bytes = sha256_file(item.image_path), item.image_path.stat().st_size
                try:
                    im.load()
                except Exception as exc:  # truncated or corrupt data
                    facts.decodes, facts.decode_error = False, str(exc)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        facts.is_image, facts.decode_error = False, str(exc)
        return facts
    shapes = {"image": (facts.height, facts.width), "mask": item.mask_shape, "annotation": item.declared_shape}
    known = {k: v for k, v in shapes.items() if v}
    if len(set(known.values())) > 1:
        facts.size_match = False
        facts.size_detail = ", ".join(f"{k} {v[1]}x{v[0]}" for k, v in known.items())
    if facts.reader_reason or not facts.size_match or not facts.decodes or facts.pixels > max_pixels:
        return facts  # the segments of a bad image are not measured
    for i, seg in enumerate(item.segments):
        sf = SegmentFacts(row_id=f"{row_id}/{i}", source=seg.source, source_id=seg.source_id, label=seg.label,
                          class_name=seg.class_name, is_thing=seg.is_thing,
                          reader_reason=seg.error[0] if seg.error else "", reader_message=seg.error[1] if seg.error else "")
        if seg.mask is not None and not sf.reader_reason:
            sf.rle, sf.area, sf.bbox = encode_mask(seg.mask)
        facts.segments.append(sf)
    return facts
