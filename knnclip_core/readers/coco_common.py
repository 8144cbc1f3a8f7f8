"""Shared by the COCO readers: loading the JSON and finding the images folder."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ..errors import InputError
from .base import ClassInfo, normalise_class_name


def load_coco_json(path: Path) -> dict:
    """Parse a COCO JSON file; InputError naming the file when it cannot be read."""
    if not path.is_file():
        raise InputError(f"annotation file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{path} is not a COCO annotation file (no 'images' and 'annotations' lists)")
    return data


def coco_categories(data: dict) -> dict[int, ClassInfo]:
    """category id -> ClassInfo (isthing kept when present)."""
    out = {}
    for cat in data.get("categories", []):
        isthing = cat.get("isthing")
        out[int(cat["id"])] = ClassInfo(normalise_class_name(str(cat["name"])), None if isthing is None else bool(isthing))
    return out


def guess_images_dir(json_path: Path, images: Path | None) -> Path:
    """`images` if given, else a folder named after the split near the JSON
    (e.g. panoptic_train2017.json -> ../images/train2017); InputError if none exists."""
    if images is not None:
        if not Path(images).is_dir():
            raise InputError(f"--images folder {images} does not exist")
        return Path(images)
    split = json_path.stem.split("_")[-1]  # train2017
    here = json_path.parent
    for cand in (here / split, here.parent / split, here.parent / "images" / split, here.parent.parent / "images" / split,
                 here.parent / "images", here / "images"):
        if cand.is_dir():
            return cand
    raise InputError(f"cannot find the images of {json_path}; pass --images DIR")


def group_by_image(annotations: list[dict]) -> dict[int, list[dict]]:
    grouped: dict[int, list[dict]] = defaultdict(list)
    for ann in annotations:
        grouped[ann.get("image_id")].append(ann)
    return grouped
