"""`coco-instances`: an instances JSON (polygons, RLE, uncompressed RLE) and the images."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np
from pycocotools import mask as mask_utils

from ..embedders.rle_weights import parse_counts
from .base import READERS, ImageItem, Reader, SegmentItem, check_label_count
from .coco_common import (coco_categories, entry_item, group_by_image, guess_images_dir, index_images, is_int,
                          load_coco_json, short)
from .regions import Encoded, encode_mask
from .safe_files import RefusedFile


def check_polygons(segm: list, height: int, width: int) -> list[list[float]]:
    """The polygons of a COCO polygon list with 3+ points (shorter ones are dropped, as
    pycocotools does); ValueError for non-numbers, odd lengths, non-finite coordinates,
    coordinates far outside the image or outlines far longer than the image's (they would
    crash pycocotools or exhaust its memory)."""
    bound, perimeter = 4 * max(height, width) + 16, 0.0
    polys = []
    for p in segm:
        if not isinstance(p, list) or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p):
            raise ValueError(f"a polygon is {short(p)}, not a list of numbers")
        if len(p) < 6:
            continue
        if len(p) % 2:
            raise ValueError(f"a polygon has an odd number of coordinates ({len(p)})")
        coords = np.asarray(p, np.float64)
        if not np.isfinite(coords).all() or np.abs(coords).max() > bound:
            raise ValueError(f"a polygon coordinate ({short(float(np.abs(coords).max()))}) is not finite or lies far "
                             f"outside the {width}x{height} image")
        pts = coords.reshape(-1, 2)
        perimeter += float(np.abs(np.diff(pts, axis=0, append=pts[:1])).max(axis=1).sum())
        if perimeter > 100 * (height + width):  # pycocotools allocates memory per unit of outline
            raise ValueError(f"the polygons' outline is over {100 * (height + width)} pixels long, "
                             f"100 times the {width}x{height} image's")
        polys.append(p)
    return polys


LONG_COUNT = re.compile("[\x50-\x6f]{7}")  # 7 continuation characters in a row


def check_rle(segm: dict, max_pixels: int) -> tuple[tuple[int, int], object]:
    """((h, w), counts) of a COCO RLE whose runs are non-negative and cover h x w exactly;
    ValueError otherwise (pycocotools would write past its buffer)."""
    size = segm.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(is_int(v) and v > 0 for v in size)):
        raise ValueError(f"the RLE size is {short(size)}, not [height, width]")
    h, w = size
    if h * w > max_pixels:
        raise ValueError(f"the RLE is {w}x{h} = {h * w} pixels, over the limit of {max_pixels}")
    counts = segm.get("counts")
    if isinstance(counts, list):
        if not all(is_int(c) for c in counts):
            raise ValueError("the RLE counts are not all integers")
        runs = counts
    elif isinstance(counts, str):
        if LONG_COUNT.search(counts):  # a count over 35 bits overflows pycocotools' parser
            raise ValueError("the RLE counts string holds a count too large for any image")
        runs = parse_counts(counts).tolist()
    else:
        raise ValueError(f"the RLE counts are {short(counts)}, neither a list nor a string")
    if any(r < 0 for r in runs) or sum(int(r) for r in runs) != h * w:
        raise ValueError(f"the RLE runs do not cover its {w}x{h} pixels exactly")
    return (h, w), counts


class CocoRegion:
    """A COCO `segmentation` checked on construction (ValueError if malformed), decoded on demand."""

    def __init__(self, segm, height: int, width: int, max_pixels: int):
        self.segm = segm
        if isinstance(segm, list):
            self.polys, self.shape = check_polygons(segm, height, width), (height, width)
        elif isinstance(segm, dict):
            self.shape, self.counts = check_rle(segm, max_pixels)
        else:
            raise ValueError(f"unsupported segmentation of type {type(segm).__name__}")

    def mask(self) -> np.ndarray:
        h, w = self.shape
        if isinstance(self.segm, list):
            if not self.polys:
                return np.zeros((h, w), bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(self.polys, h, w))
        elif isinstance(self.counts, list):
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": self.counts}, h, w)
        else:
            rle = {"size": [h, w], "counts": self.counts.encode()}
        return mask_utils.decode(rle).astype(bool)

    def encode(self) -> Encoded:
        return encode_mask(self.mask())


class CocoInstancesReader(Reader):
    """One segment per annotation; crowd annotations (iscrowd=1) are skipped and counted."""

    format = "coco-instances"
    skip_crowd = True  # corrections (knnclip_core.labelling) keep them: CVAT marks masks iscrowd

    def __init__(self, path: Path, images: Path | None = None, dataset_name: str | None = None):
        self.json_path = Path(path)
        data = load_coco_json(self.json_path)
        self.root = guess_images_dir(self.json_path, images)
        self.categories, problems = coco_categories(data)
        for c in self.categories.values():
            c.is_thing = True if c.is_thing is None else c.is_thing
        self.classes = list(self.categories.values())
        self.dataset_name = dataset_name or "coco-instances"
        self._images, more = index_images(data, need_size=True)
        self._by_image, most = group_by_image(data["annotations"])
        self._problems = problems + more + most

    def __len__(self) -> int:
        return len(self._by_image) + len(self._problems)

    def describe(self) -> dict:
        return {**super().describe(), "json": str(self.json_path)}

    def __iter__(self) -> Iterator[ImageItem]:
        for problem in self._problems:
            yield entry_item(self.json_path, problem)
        for image_id in sorted(self._by_image):
            try:
                item = self._item(image_id)
            except Exception as exc:  # anything the checks above missed stays with this image
                item = entry_item(self.json_path, ("bad_annotation", f"image_id {image_id}",
                                                   f"cannot be read ({type(exc).__name__}: {exc})"))
            yield item

    def _item(self, image_id: int) -> ImageItem:
        info = self._images.get(image_id)
        if info is None:
            return ImageItem(image_path=self.root / f"image_id={image_id}", rel_path=f"image_id={image_id}",
                             errors=[("unknown_image", f"{self.json_path}: annotations for image_id {image_id} have no entry in 'images'")])
        file_name, h, w = info["file_name"], info["height"], info["width"]
        item = ImageItem(image_path=self.root / file_name, rel_path=file_name, source_id=str(image_id),
                         declared_shape=(h, w), mask_shape=(h, w))
        anns = self._by_image[image_id]
        try:
            if h * w > self.max_pixels:
                raise RefusedFile("too_many_pixels", f"{self.json_path}: image_id {image_id} declares {w}x{h} = "
                                                     f"{h * w} pixels, over the limit of {self.max_pixels}")
            check_label_count(len(anns), self.max_labels, f"{self.json_path.name} image_id {image_id}")
        except RefusedFile as exc:
            item.errors.append((exc.reason, str(exc)))
            return item
        for ann in anns:
            if ann.get("iscrowd", 0) and self.skip_crowd:
                item.skipped_crowd += 1
                continue
            cat_id = ann.get("category_id")
            cat = self.categories.get(cat_id) if is_int(cat_id) else None
            source = f"{self.json_path.name} annotation {short(ann.get('id'))}"
            seg = SegmentItem(source=source, label=short(cat_id), class_name=cat.name if cat else None,
                              is_thing=cat.is_thing if cat else None, source_id=short(ann.get("id"), 64))
            try:
                seg.region = CocoRegion(ann.get("segmentation"), h, w, self.max_pixels)
            except Exception as exc:
                seg.error = ("bad_segmentation", f"{source}: cannot decode the segmentation ({exc})")
            item.segments.append(seg)
        return item


READERS.add("coco-instances", CocoInstancesReader)
