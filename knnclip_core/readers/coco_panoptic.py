"""`coco-panoptic`: a panoptic JSON, its RGB id PNGs (id = R + 256 G + 65536 B) and the images."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .base import DEFAULT_MAX_PIXELS, READERS, ImageItem, Reader, SegmentItem, check_label_count, mask_error
from .coco_common import coco_categories, entry_item, guess_images_dir, index_images, is_int, load_coco_json, short
from .regions import LabelMap
from .safe_files import confine, open_image_header, open_regular, printable

PANOPTIC_MODES = {"RGB", "RGBA", "P", "L"}


def read_panoptic_ids(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Segment id map of a panoptic PNG, its size checked from the header before decoding.
    Raises RefusedFile, ValueError or OSError."""
    with open_regular(path) as f, open_image_header(f, path, max_pixels) as im:
        if im.mode not in PANOPTIC_MODES:
            raise ValueError(f"expected an RGB panoptic PNG, got mode {im.mode}")
        rgb = np.asarray(im.convert("RGB"))
    ids = rgb[..., 0].astype(np.uint32)
    ids |= rgb[..., 1].astype(np.uint32) << 8
    ids |= rgb[..., 2].astype(np.uint32) << 16
    return ids


class CocoPanopticReader(Reader):
    """One segment per `segments_info` entry; things and stuff kept apart by `is_thing`."""

    format = "coco-panoptic"

    def __init__(self, path: Path, images: Path | None = None, masks: Path | None = None, dataset_name: str | None = None):
        self.json_path = Path(path)
        data = load_coco_json(self.json_path)
        first = next((a for a in data["annotations"] if isinstance(a, dict)), None)
        if first is not None and "segments_info" not in first:
            raise InputError(f"{path} has no segments_info: not a panoptic file (try --format coco-instances)")
        self.png_dir = Path(masks) if masks else self.json_path.with_suffix("")
        if not self.png_dir.is_dir():
            raise InputError(f"panoptic PNG folder {self.png_dir} does not exist; pass --masks DIR")
        self.root = guess_images_dir(self.json_path, images)
        self.categories, problems = coco_categories(data)
        self.classes = list(self.categories.values())
        self.dataset_name = dataset_name or "coco-panoptic"
        self._images, more = index_images(data, need_size=False)
        self._problems = problems + more
        self._annotations = data["annotations"]

    def __len__(self) -> int:
        return len(self._annotations) + len(self._problems)

    def describe(self) -> dict:
        return {**super().describe(), "json": str(self.json_path), "masks": str(self.png_dir)}

    def __iter__(self) -> Iterator[ImageItem]:
        for problem in self._problems:
            yield entry_item(self.json_path, problem)
        for i, ann in enumerate(self._annotations):
            try:
                item = self._item(i, ann)
            except Exception as exc:  # anything the checks missed stays with this annotation
                item = entry_item(self.json_path, ("bad_annotation", f"annotations[{i}]",
                                                   f"cannot be read ({type(exc).__name__}: {exc})"))
            yield item

    def _item(self, i: int, ann) -> ImageItem:
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            return entry_item(self.json_path, ("bad_annotation", where, f"is {short(ann)}, not an object"))
        image_id, png_name, segments = ann.get("image_id"), ann.get("file_name"), ann.get("segments_info")
        if not is_int(image_id):
            return entry_item(self.json_path, ("bad_annotation", where, f"has image_id {short(image_id)}, not an integer"))
        if not isinstance(png_name, str) or not png_name:
            return entry_item(self.json_path, ("bad_annotation", where, f"has file_name {short(png_name)}, not a text"))
        info = self._images.get(image_id, {})
        file_name = info.get("file_name") or str(Path(png_name).with_suffix(".jpg"))
        item = ImageItem(image_path=self.root / file_name, rel_path=file_name, source_id=str(image_id))
        if info.get("height"):
            item.declared_shape = (info["height"], info["width"])
        if not info:
            item.errors.append(("unknown_image", f"{self.json_path}: annotation for image_id {image_id} has no entry in 'images'"))
        if not isinstance(segments, list):
            item.errors.append(("bad_annotation", f"{self.json_path}: {where} has segments_info {short(segments)}, not a list"))
            return item
        png = self.png_dir / png_name
        item.mask_path = png
        if ".." in Path(png_name).parts or Path(png_name).is_absolute():
            item.errors.append(("mask_outside_root", f"{self.json_path}: {where} names the PNG {printable(png_name)!r}, "
                                                     f"outside {self.png_dir}"))
            return item
        try:
            check_label_count(len(segments), self.max_labels, f"{self.json_path.name} {where}")
            ids = read_panoptic_ids(confine(png, self.png_dir), self.max_pixels)
        except Exception as exc:
            item.errors.append(mask_error(exc, png, "panoptic PNG"))
            return item
        item.mask_shape = ids.shape
        label_map = LabelMap(ids)
        for seg in segments:
            item.segments.append(self._segment(seg, png, image_id, label_map))
        return item

    def _segment(self, seg, png: Path, image_id: int, label_map: LabelMap) -> SegmentItem:
        """One segments_info entry; a malformed one carries a bad_annotation error."""
        if not isinstance(seg, dict):
            return SegmentItem(source=f"{printable(png.name)} segment {short(seg)}", label="", class_name=None,
                               error=("bad_annotation", f"{png}: a segments_info entry is {short(seg)}, not an object"))
        seg_id, cat_id = seg.get("id"), seg.get("category_id")
        cat = self.categories.get(cat_id) if is_int(cat_id) else None
        out = SegmentItem(source=f"{printable(png.name)} segment {short(seg_id)}", label=short(cat_id),
                          class_name=cat.name if cat else None, is_thing=cat.is_thing if cat else None,
                          source_id=f"{image_id}:{short(seg_id, 64)}")
        if is_int(seg_id):
            out.region = label_map.region(seg_id)
        else:
            out.error = ("bad_annotation", f"{png}: segment id {short(seg_id)} is not an integer")
        return out


READERS.add("coco-panoptic", CocoPanopticReader)
