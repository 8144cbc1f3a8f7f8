"""Open a reader by format name, or detect the format from the path."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import InputError
from .ade20k import find_ade_root
from .base import READERS, Reader
from .coco_common import load_coco_json

FORMATS = ("auto", "ade20k", "coco-panoptic", "coco-instances", "semantic-png")


def detect_format(path: Path) -> str:
    """'ade20k' for an ADEChallengeData2016 folder, 'coco-panoptic' / 'coco-instances' for a
    COCO JSON (by the presence of segments_info), 'semantic-png' for a folder with
    images/, masks/ and classes.txt. InputError otherwise."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        if find_ade_root(path):
            return "ade20k"
        if (path / "images").is_dir() and (path / "masks").is_dir() and (path / "classes.txt").is_file():
            return "semantic-png"
        raise InputError(f"cannot tell the format of folder {path}; pass --format")
    if path.suffix.lower() == ".json":
        if not path.is_file():  # a FIFO or device would block the read below
            raise InputError(f"{path} is not a regular file")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                if b'"segments_info"' in chunk:
                    return "coco-panoptic"
                if b'"segmentation"' in chunk:
                    return "coco-instances"
        load_coco_json(path)  # raises a clear error for unreadable JSON
        raise InputError(f"{path} holds neither panoptic segments_info nor instance segmentations")
    raise InputError(f"cannot tell the format of {path}; pass --format")


def open_reader(path: str | Path, fmt: str = "auto", *, split: str = "validation", dataset: str | None = None,
                images: str | Path | None = None, masks: str | Path | None = None, classes: str | Path | None = None,
                ignore: Iterable[int] = ()) -> Reader:
    """A reader for `path` in format `fmt` ('auto' detects). Raises InputError."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in READERS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    cls = READERS.get(fmt)
    if fmt == "ade20k":
        return cls(path, split=split, dataset_name=dataset)
    if fmt == "coco-panoptic":
        return cls(path, images=images, masks=masks, dataset_name=dataset)
    if fmt == "coco-instances":
        return cls(path, images=images, dataset_name=dataset)
    # semantic-png: PATH is the dataset folder; --images/--masks/--classes default inside it
    images = Path(images) if images else path / "images"
    masks = Path(masks) if masks else path / "masks"
    classes = Path(classes) if classes else path / "classes.txt"
    return cls(images, masks, classes, ignore=ignore, dataset_name=dataset or path.resolve().name,
               root=path if path.is_dir() else None)
