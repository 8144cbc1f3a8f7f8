"""`coco-panoptic`: a panoptic JSON, its RGB id PNGs (id = R + 256 G + 65536 B) and the images."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from ..errors import InputError
from .base import READERS, ImageItem, Reader, SegmentItem
from .coco_common import coco_categories, guess_images_dir, load_coco_json


def read_panoptic_ids(path: Path) -> np.ndarray:
    """Segment id map of a panoptic PNG."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


class CocoPanopticReader(Reader):
    """One segment per `segments_info` entry; things and stuff kept apart by `is_thing`."""

    format = "coco-panoptic"

    def __init__(self, path: Path, images: Path | None = None, masks: Path | None = None, dataset_name: str | None = None):
        self.json_path = Path(path)
        data = load_coco_json(self.json_path)
        if data["annotations"] and "segments_info" not in data["annotations"][0]:
            raise InputError(f"{path} has no segments_info: not a panoptic file (try --format coco-instances)")
        self.png_dir = Path(masks) if masks else self.json_path.with_suffix("")
        if not self.png_dir.is_dir():
            raise InputError(f"panoptic PNG folder {self.png_dir} does not exist; pass --masks DIR")
        self.root = guess_images_dir(self.json_path, images)
        self.categories = coco_categories(data)
        self.classes = list(self.categories.values())
        self.dataset_name = dataset_name or "coco-panoptic"
        self._images = {img.get("id"): img for img in data["images"]}
        self._annotations = data["annotations"]

    def __len__(self) -> int:
        return len(self._annotations)

    def describe(self) -> dict:
        return {**super().describe(), "json": str(self.json_path), "masks": str(self.png_dir)}

    def __iter__(self) -> Iterator[ImageItem]:
        for ann in self._annotations:
            info = self._images.get(ann.get("image_id"), {})
            file_name = str(info.get("file_name") or Path(ann.get("file_name", "?")).with_suffix(".jpg"))
            item = ImageItem(image_path=self.root / file_name, rel_path=file_name, source_id=str(ann.get("image_id")))
            if info.get("height") and info.get("width"):
                item.declared_shape = (int(info["height"]), int(info["width"]))
            if not info:
                item.errors.append(("unknown_image", f"{self.json_path}: annotation for image_id {ann.get('image_id')} has no entry in 'images'"))
            png = self.png_dir / str(ann.get("file_name", ""))
            item.mask_path = png
            try:
                ids = read_panoptic_ids(png)
            except Exception as exc:
                item.errors.append(("mask_unreadable", f"{png}: cannot read the panoptic PNG ({exc})"))
                yield item
                continue
            item.mask_shape = ids.shape
            for seg in ann.get("segments_info", []):
                cat = self.categories.get(int(seg.get("category_id", -1)))
                item.segments.append(SegmentItem(
                    source=f"{png.name} segment {seg.get('id')}", label=str(seg.get("category_id")),
                    class_name=cat.name if cat else None, mask=ids == int(seg.get("id", -1)),
                    is_thing=cat.is_thing if cat else None, source_id=f"{ann.get('image_id')}:{seg.get('id')}"))
            yield item


READERS.add("coco-panoptic", CocoPanopticReader)
