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

from ..classnames import SYNONYM_SEP, join_synonyms
from ..plugins import Registry
from .regions import LabelMap, Region
from .safe_files import RefusedFile, open_image_header, open_regular, printable

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 60_000_000  # ingest passes settings.ingest.max_pixels
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class ClassInfo:
    """A class of a dataset's class list."""

    name: str
    is_thing: Optional[bool] = None


@dataclass
class SegmentItem:
    """One labelled mask as the source gives it; its pixels are decoded on demand."""

    source: str                      # where it comes from, e.g. "masks/0001.png value 3"
    label: str                       # raw label (mask value or category id)
    class_name: Optional[str]        # None: the label is not in the dataset's class list
    region: Optional[Region] = None  # its pixels; None when they could not be read
    is_thing: Optional[bool] = None
    source_id: str = ""              # id in the source (annotation id), checked for uniqueness
    error: Optional[tuple[str, str]] = None  # (reason code, message) the reader found

    @property
    def mask(self) -> Optional[np.ndarray]:
        """Bool HxW mask, decoded now (each access decodes again); None if unreadable."""
        return None if self.region is None or self.error else self.region.mask()


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
    implement `__iter__` and `__len__`. Masks over `max_pixels` (header size) or with
    more than `max_labels` values are refused undecoded (ingest sets its own limit)."""

    format: str = ""
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_labels: int = 4096
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
    """Non-hidden entries of `folder` that are not folders (not recursive), sorted by name.
    Special files (FIFOs, sockets, devices) are listed so that they get quarantined."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())


LABEL_MODES = {"1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N"}


def read_label_png(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A single-channel integer label image (palette indices kept as is). The size is
    checked from the header before decoding. Raises RefusedFile, ValueError or OSError."""
    with open_regular(path) as f, open_image_header(f, path, max_pixels) as im:
        if im.mode not in LABEL_MODES:
            raise ValueError(f"expected a single-channel integer label image, got mode {im.mode}")
        labels = np.asarray(im)
    return labels.astype(np.uint8) if labels.dtype == bool else labels


def check_label_count(count: int, limit: int, source: str) -> None:
    """RefusedFile('too_many_labels') when a mask has more than `limit` segments."""
    if count > limit:
        raise RefusedFile("too_many_labels", f"{source}: {count} distinct labels, over the limit of {limit} per mask")


def mask_error(exc: Exception, path: Path, what: str = "mask") -> tuple[str, str]:
    """(reason code, message) of a mask that could not be read: the RefusedFile's own
    reason, else 'mask_unreadable'."""
    if isinstance(exc, RefusedFile):
        return exc.reason, str(exc)
    return "mask_unreadable", f"{printable(str(path))}: cannot read the {what} ({type(exc).__name__}: {exc})"


def split_label_map(labels: np.ndarray, class_names: dict[int, ClassInfo], ignore: set[int],
                    source: str, max_labels: int) -> list[SegmentItem]:
    """One SegmentItem per label value present (ignored values skipped), sharing one
    LabelMap. RefusedFile('too_many_labels') over `max_labels` values."""
    label_map = LabelMap(labels)
    values = [v for v in label_map.values() if v not in ignore]
    check_label_count(len(values), max_labels, source)
    out = []
    for v in values:
        info = class_names.get(v)
        out.append(SegmentItem(source=f"{source} value {v}", label=str(v), class_name=info.name if info else None,
                               region=label_map.region(v), is_thing=info.is_thing if info else None))
    return out
