"""`coco-instances`: an instances JSON (polygons, RLE, uncompressed RLE) and the images."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from pycocotools import mask as mask_utils

from .base import READERS, ImageItem, Reader, SegmentItem
from .coco_common import coco_categories, group_by_image, guess_images_dir, load_coco_json


def decode_coco_segmentation(segm, height: int, width: int) -> np.ndarray:
    """Bool HxW mask of a COCO `segmentation` (polygon list, RLE or uncompressed RLE)."""
    if isinstance(segm, list):  # polygons
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segm, *segm["size"])
    elif isinstance(segm, dict):
        rle = {"size": segm["size"], "counts": segm["counts"].encode() if isinstance(segm["counts"], str) else segm["counts"]}
    else:
        raise ValueError(f"unsupported segmentation of type {type(segm).__name__}")
    return mask_utils.decode(rle).astype(bool)


class CocoInstancesReader(Reader):
    """One segment per annotation; crowd annotations (iscrowd=1) are skipped and counted."""

    format = "coco-instances"

    def __init__(self, path: Path, images: Path | None = None, dataset_name: str | None = None):
        self.json_path = Path(path)
        data = load_coco_json(self.json_path)
        self.root = guess_images_dir(self.json_path, images)
        self.categories = coco_categories(data)
        for c in self.categories.values():
            c.is_thing = True if c.is_thing is None else c.is_thing
        self.classes = list(self.categories.values())
        self.dataset_name = dataset_name or "coco-instances"
        self._images = {img.get("id"): img for img in data["images"]}
        self._by_image = group_by_image(data["annotations"])

    def __len__(self) -> int:
        return len(self._by_image)

    def describe(self) -> dict:
        return {**super().describe(), "json": str(self.json_path)}

    def __iter__(self) -> Iterator[ImageItem]:
        for image_id in sorted(self._by_image, key=str):
            info = self._images.get(image_id)
            if info is None:
                yield ImageItem(image_path=self.root / f"image_id={image_id}", rel_path=f"image_id={image_id}",
                                errors=[("unknown_image", f"{self.json_path}: annotations for image_id {image_id} have no entry in 'images'")])
                continue
            file_name = str(info.get("file_name", ""))
            h, w = int(info.get("height", 0)), int(info.get("width", 0))
            item = ImageItem(image_path=self.root / file_name, rel_path=file_name, source_id=str(image_id),
                             declared_shape=(h, w), mask_shape=(h, w))
            for ann in self._by_image[image_id]:
                if ann.get("iscrowd", 0):
                    item.skipped_crowd += 1
                    continue
                cat = self.categories.get(int(ann.get("category_id", -1)))
                source = f"{self.json_path.name} annotation {ann.get('id')}"
                try:
                    mask = decode_coco_segmentation(ann.get("segmentation"), h, w)
                except Exception as exc:
                    item.segments.append(SegmentItem(
                        source=source, label=str(ann.get("category_id")), class_name=cat.name if cat else None,
                        mask=None, source_id=str(ann.get("id")),
                        error=("bad_segmentation", f"{source}: cannot decode the segmentation ({exc})")))
                    continue
                item.segments.append(SegmentItem(source=source, label=str(ann.get("category_id")),
                                                 class_name=cat.name if cat else None, mask=mask,
                                                 is_thing=cat.is_thing if cat else None, source_id=str(ann.get("id"))))
            yield item


READERS.add("coco-instances", CocoInstancesReader)
