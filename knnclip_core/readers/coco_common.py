"""Shared by the COCO readers: loading the JSON, checking its entries, finding the images.

A COCO file is untrusted: entries that are not objects, ids that are not integers,
missing or non-numeric sizes are reported one by one as `bad_annotation` items
(quarantined with the entry's position) and the rest of the file is read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import ClassInfo, ImageItem, normalise_class_name
from .safe_files import is_utf8, printable

Problem = tuple[str, str, str]  # (reason code, where, message): an entry that is not read


def load_coco_json(path: Path) -> dict:
    """Parse a COCO JSON file; InputError naming the file when it cannot be read."""
    if not path.exists():
        raise InputError(f"annotation file {path} does not exist")
    if not path.is_file():
        raise InputError(f"annotation file {path} is not a regular file")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{path} is not readable JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path} is not readable JSON (nested too deeply)") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{path} is not a COCO annotation file (no 'images' and 'annotations' lists)")
    return data


def is_int(value: Any) -> bool:
    """True for a JSON integer (not a bool, not a float or string)."""
    return isinstance(value, int) and not isinstance(value, bool)


def short(value: Any, limit: int = 40) -> str:
    """A short, printable description of a JSON value for messages."""
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    text = printable(repr(value)) if isinstance(value, (str, int, float)) or value is None else type(value).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def entry_item(json_path: Path, problem: Problem) -> ImageItem:
    """An item standing for an entry of the JSON that cannot be read; quarantined as is."""
    reason, where, message = problem
    return ImageItem(image_path=json_path, rel_path=f"{json_path.name} {where}",
                     errors=[(reason, f"{json_path}: {where} {message}")])


def coco_categories(data: dict) -> tuple[dict[int, ClassInfo], list[Problem]]:
    """category id -> ClassInfo (isthing kept when present), and the entries not read."""
    cats = data.get("categories", [])
    if not isinstance(cats, list):
        return {}, [("bad_annotation", "categories", f"is {short(cats)}, not a list")]
    out: dict[int, ClassInfo] = {}
    problems: list[Problem] = []
    for i, cat in enumerate(cats):
        where = f"categories[{i}]"
        if not isinstance(cat, dict):
            problems.append(("bad_annotation", where, f"is {short(cat)}, not an object"))
        elif not is_int(cat.get("id")):
            problems.append(("bad_annotation", where, f"has id {short(cat.get('id'))}, not an integer"))
        elif not isinstance(cat.get("name"), str) or not cat["name"].strip() or not is_utf8(cat["name"]):
            problems.append(("bad_annotation", where, f"has name {short(cat.get('name'))}, not a UTF-8 text"))
        elif cat["id"] in out:
            problems.append(("duplicate_id", where, f"repeats category id {cat['id']}"))
        else:
            isthing = cat.get("isthing")
            out[cat["id"]] = ClassInfo(normalise_class_name(cat["name"]), None if isthing is None else bool(isthing))
    return out, problems


def positive_int(info: dict, key: str) -> bool:
    return is_int(info.get(key)) and info[key] > 0


def index_images(data: dict, need_size: bool) -> tuple[dict[int, dict], list[Problem]]:
    """image id -> `images` entry, for entries with an integer id, a file name and (when
    given, or always if `need_size`) positive integer height and width; the others as problems.
    A repeated id keeps the first entry."""
    out: dict[int, dict] = {}
    problems: list[Problem] = []
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            problems.append(("bad_annotation", where, f"is {short(img)}, not an object"))
        elif not is_int(img.get("id")):
            problems.append(("bad_annotation", where, f"has id {short(img.get('id'))}, not an integer"))
        elif not isinstance(img.get("file_name"), str) or not img["file_name"]:
            problems.append(("bad_annotation", where, f"has file_name {short(img.get('file_name'))}, not a text"))
        elif (need_size or "height" in img or "width" in img) and not (positive_int(img, "height") and positive_int(img, "width")):
            problems.append(("bad_annotation", where, f"has height {short(img.get('height'))} and width "
                                                      f"{short(img.get('width'))}, not positive integers"))
        elif img["id"] in out:
            problems.append(("duplicate_id", where, f"repeats image id {img['id']}"))
        else:
            out[img["id"]] = img
    return out, problems


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


def group_by_image(annotations: list) -> tuple[dict[int, list[dict]], list[Problem]]:
    """image id -> its annotations (objects with an integer image_id), and the others as problems.
    Annotation ids are unique over the whole file in COCO: a repeated one (in any image) is a
    problem and the first entry is kept."""
    grouped: dict[int, list[dict]] = {}
    problems: list[Problem] = []
    first_at: dict = {}  # annotation id -> index of its first entry
    for i, ann in enumerate(annotations):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        if not isinstance(ann, dict):
            problems.append(("bad_annotation", f"annotations[{i}]", f"is {short(ann)}, not an object"))
        elif not is_int(ann.get("image_id")):
            problems.append(("bad_annotation", f"annotations[{i}]", f"has image_id {short(ann.get('image_id'))}, not an integer"))
        elif isinstance(ann_id, (int, str)) and not isinstance(ann_id, bool) and ann_id in first_at:
            problems.append(("duplicate_id", f"annotations[{i}]",
                             f"repeats annotation id {short(ann_id)} of annotations[{first_at[ann_id]}]"))
        else:
            if isinstance(ann_id, (int, str)) and not isinstance(ann_id, bool):
                first_at[ann_id] = i
            grouped.setdefault(ann["image_id"], []).append(ann)
    return grouped, problems
