"""What every reader yields: one ImageItem per annotated image, with its segments.

Readers stream: masks are decoded one image at a time. They report problems they
can see (missing files, unknown labels) on the item and leave the checks that need
the image itself to validation.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from PIL import Image

from ..classnames import SYNONYM_SEP, join_synonyms
from ..plugins import Registry

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class ClassInfo:
    """A class of a dataset's class list."""

    name: str
    is_thing: Optional[bool] = None


@dataclass
class SegmentItem:
    """One labelled mask as the source gives it."""

    source: str                      # where it comes from, e.g. "masks/0001.png value 3"
    label: str                       # raw label (mask value or category id)
    class_name: Optional[str]        # None: the label is not in the dataset's class list
    mask: Optional[np.ndarray]       # bool HxW; None when it could not be decoded
    is_thing: Optional[bool] = None
    source_id: str = ""              # id in the source (annotation id), checked for uniqueness
    error: Optional[tuple[str, str]] = None  # (reason code, message) the reader found


@dataclass
class ImageItem:
    """One image of the source with its segments and what the reader saw wrong."""

    image_path: Path                 # root / rel_path, not yet resolved
    rel_path: str                    # as named by the source (may hold '..')
    mask_path: Optional[Path] = None
    mask_shape: Optional[tuple[int, int]] = None     # (h, w) of the annotation
    declared_shape: Optional[tuple[int, int]] = None  # (h, w) the annotation file declares
    segments: list[SegmentItem] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (reason code, message)
    skipped_crowd: int = 0
    source_id: str = ""

    @property
    def item(self) -> str:
        return self.rel_path


class Reader:
    """Base class: subclasses set `format`, `root`, `dataset_name`, `classes` and
    implement `__iter__` and `__len__`."""

    format: str = ""
    root: Path
    dataset_name: str
    classes: list[ClassInfo]

    def __iter__(self) -> Iterator[ImageItem]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self) -> dict:
        """Parameters that identify this source (recorded with the batch)."""
        return {"format": self.format, "root": str(self.root), "dataset": self.dataset_name}


READERS: Registry[type] = Registry("reader format")


def normalise_class_name(name: str) -> str:
    """Canonical class label: each synonym lower case with single spaces, synonyms joined by
    `|` ('Traffic_light' -> 'traffic light', 'Coffee table | cocktail table' ->
    'coffee table|cocktail table'; see knnclip_core.classnames)."""
    return join_synonyms(re.sub(r"\s+", " ", n.replace("_", " ").replace("-", " ").strip().lower())
                         for n in name.split(SYNONYM_SEP))


def list_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files of `folder` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_file() or p.is_symlink()))


def read_label_png(path: Path) -> np.ndarray:
    """A single-channel label PNG as an integer array (palette indices kept as is)."""
    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA"):
            raise ValueError("expected a single-channel label image, got RGB")
        return np.asarray(im)


def split_label_map(labels: np.ndarray, class_names: dict[int, ClassInfo], ignore: set[int],
                    source: str) -> list[SegmentItem]:
    """One SegmentItem per label value present (ignored values skipped)."""
    values = np.unique(labels)
    out = []
    for v in values.tolist():
        if v in ignore:
            continue
        info = class_names.get(v)
        out.append(SegmentItem(source=f"{source} value {v}", label=str(v),
                               class_name=info.name if info else None, mask=labels == v,
                               is_thing=info.is_thing if info else None))
    return out
