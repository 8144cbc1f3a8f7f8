"""Facts about each image and segment of a batch: what validation judges.

`inspect_item` opens the image (header first, so that oversized images are never
decoded), hashes it, decodes it fully, and measures every segment mask. The facts are
plain columns; the Great Expectations suite (suite.py) turns them into verdicts.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image, UnidentifiedImageError

from ..readers.base import ImageItem, SegmentItem
from ..readers.regions import encode_mask  # noqa: F401  (kept importable from here)
from ..readers.safe_files import RefusedFile, confine, is_utf8, open_regular, printable

logger = logging.getLogger(__name__)


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
        confine(path, root, "image")
        return True
    except RefusedFile:
        return False


def bad_name(item: ImageItem) -> str:
    """Which name of `item` cannot be stored as UTF-8 (undecodable file-name bytes, lone
    surrogates from JSON escapes), or ''."""
    names = {"file name": item.rel_path, "path": str(item.image_path), "id": item.source_id}
    for i, seg in enumerate(item.segments):
        names.update({f"segment {i} source": seg.source, f"segment {i} id": seg.source_id, f"segment {i} label": seg.label})
    return next((f"the {key} '{printable(text)}'" for key, text in names.items() if not is_utf8(text)), "")


def read_image_facts(facts: ImageFacts, path: Path, max_pixels: int) -> None:
    """Fill size, hash and decode facts of the image at `path`, opened only if it is a
    regular file and decoded only if its header size is within `max_pixels`."""
    try:
        f = open_regular(path)
    except FileNotFoundError:
        facts.exists = False
        return
    except RefusedFile as exc:
        facts.reader_reason, facts.reader_message = exc.reason, str(exc)
        return
    except OSError as exc:  # permission denied, name too long, a loop of symlinks
        facts.is_image, facts.decode_error = False, f"cannot open it ({exc.strerror or exc})"
        return
    with f:
        try:
            with Image.open(f) as im:  # Pillow's bomb guard stays on: past it, too_many_pixels below
                facts.width, facts.height = im.size
                facts.pixels = facts.width * facts.height
                if facts.pixels <= max_pixels:
                    try:
                        im.load()
                    except Exception as exc:  # truncated or corrupt data
                        facts.decodes, facts.decode_error = False, str(exc)
        except Image.DecompressionBombError as exc:  # over 2 x Image.MAX_IMAGE_PIXELS: never decoded
            facts.reader_reason = "too_many_pixels"
            facts.reader_message = f"{printable(str(path))}: over Pillow's decompression-bomb limit ({exc})"
            return
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            facts.is_image, facts.decode_error = False, str(exc)
            return
        if facts.pixels <= max_pixels:
            f.seek(0)
            facts.sha256, facts.bytes = hashlib.file_digest(f, "sha256").hexdigest(), os.fstat(f.fileno()).st_size


def inspect_item(item: ImageItem, root: Path, row_id: str, max_pixels: int) -> ImageFacts:
    """Facts of one image item and its segments. Never raises on bad input."""
    facts = ImageFacts(row_id=row_id, item=printable(item.rel_path), path=printable(str(item.image_path)),
                       source_id=printable(item.source_id), skipped_crowd=item.skipped_crowd)
    if item.errors:  # the reader already refused it: nothing is opened
        facts.reader_reason, facts.reader_message = item.errors[0]
        return facts
    name = bad_name(item)
    if name:
        facts.reader_reason, facts.reader_message = "bad_name", f"{facts.path}: {name} is not valid UTF-8"
        return facts
    facts.inside_root = path_inside(item.image_path, root, item.rel_path)
    if not facts.inside_root:
        return facts  # never open files outside the root
    read_image_facts(facts, item.image_path, max_pixels)
    if facts.reader_reason or not facts.exists or not facts.is_image:
        return facts
    shapes = {"image": (facts.height, facts.width), "mask": item.mask_shape, "annotation": item.declared_shape}
    known = {k: tuple(v) for k, v in shapes.items() if v}
    if len(set(known.values())) > 1:
        facts.size_match = False
        facts.size_detail = ", ".join(f"{k} {v[1]}x{v[0]}" for k, v in known.items())
    if not facts.size_match or not facts.decodes or facts.pixels > max_pixels:
        return facts  # the segments of a bad image are not measured
    for i, seg in enumerate(item.segments):
        facts.segments.append(segment_facts(seg, f"{row_id}/{i}", (facts.height, facts.width)))
    return facts


def segment_facts(seg: SegmentItem, row_id: str, image_shape: tuple[int, int]) -> SegmentFacts:
    """Facts of one segment: its RLE, area and box when its region decodes and has the
    image's size (a region of another size is never decoded)."""
    sf = SegmentFacts(row_id=row_id, source=seg.source, source_id=seg.source_id, label=seg.label,
                      class_name=seg.class_name, is_thing=seg.is_thing,
                      reader_reason=seg.error[0] if seg.error else "", reader_message=seg.error[1] if seg.error else "")
    if sf.reader_reason or seg.region is None:
        return sf
    if tuple(seg.region.shape) != tuple(image_shape):
        (h, w), (ih, iw) = seg.region.shape, image_shape
        sf.reader_reason, sf.reader_message = "mask_size_mismatch", f"{seg.source}: the mask is {w}x{h}, the image {iw}x{ih}"
        return sf
    try:
        sf.rle, sf.area, sf.bbox = seg.region.encode()
    except Exception as exc:  # a segmentation pycocotools refuses
        sf.reader_reason, sf.reader_message = "bad_segmentation", f"{seg.source}: cannot decode the segmentation ({exc})"
    return sf
