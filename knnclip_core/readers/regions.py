"""Where a segment's pixels come from, decoded only when asked and one at a time.

A reader never holds one full-size boolean mask per label: a `LabelMap` keeps the label
image once and gives each value's COCO RLE from a single sort of its pixels (memory
grows with pixels, not pixels x values); a COCO annotation keeps its (validated)
segmentation and decodes on demand.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from pycocotools import mask as mask_utils

Encoded = tuple[str, int, tuple[int, int, int, int]]  # (RLE counts, area, bbox xywh)


class Region(Protocol):
    """A segment's pixels: `shape` (h, w) known without decoding."""

    shape: tuple[int, int]

    def mask(self) -> np.ndarray: ...  # bool (h, w)

    def encode(self) -> Encoded: ...


def encode_rle(rle: dict) -> Encoded:
    """(RLE counts, area, bbox xywh) of a pycocotools compressed RLE."""
    area = int(mask_utils.area(rle))
    x, y, w, h = (int(round(v)) for v in mask_utils.toBbox(rle))
    counts = rle["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else counts, area, (x, y, w, h)


def encode_mask(mask: np.ndarray) -> Encoded:
    """(RLE counts, area, bbox xywh) of a bool mask."""
    return encode_rle(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def distinct_values(labels: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer label image (bincount for 8/16-bit, else unique)."""
    if labels.dtype.kind == "u" and labels.dtype.itemsize <= 2:
        return np.flatnonzero(np.bincount(labels.ravel(), minlength=1)).astype(labels.dtype)
    return np.unique(labels)


class LabelMap:
    """An integer label image shared by the segments of one mask file."""

    def __init__(self, labels: np.ndarray):
        if labels.dtype == bool:
            labels = labels.astype(np.uint8)
        self.labels = labels
        self.shape = labels.shape[:2]
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None

    def values(self) -> list[int]:
        return distinct_values(self.labels).tolist()

    def region(self, value: int) -> "LabelRegion":
        return LabelRegion(self, value)

    def positions(self, value: int) -> np.ndarray:
        """Column-major indices of the pixels equal to `value`, ascending."""
        if self._order is None:
            flat = self.labels.ravel(order="F")
            self._order = np.argsort(flat, kind="stable")  # radix sort for 8/16-bit labels
            self._sorted = flat[self._order]
        lo, hi = np.searchsorted(self._sorted, value, "left"), np.searchsorted(self._sorted, value, "right")
        return self._order[lo:hi]

    def encode(self, value: int) -> Encoded:
        """RLE of `labels == value`, identical to encode_mask's, without making that mask."""
        h, w = self.shape
        p = self.positions(value)
        if p.size == 0:
            counts = [h * w]
        else:
            brk = np.flatnonzero(np.diff(p) != 1)
            starts = p[np.concatenate(([0], brk + 1))]
            ends = p[np.concatenate((brk, [p.size - 1]))] + 1
            runs = np.empty(2 * starts.size + 1, np.int64)
            runs[0] = starts[0]
            runs[1::2] = ends - starts
            runs[2:-1:2] = starts[1:] - ends[:-1]
            runs[-1] = h * w - ends[-1]
            counts = (runs if runs[-1] else runs[:-1]).tolist()
        return encode_rle(mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w))


class LabelRegion:
    """The pixels of one value of a LabelMap."""

    def __init__(self, labels: LabelMap, value: int):
        self.labels, self.value, self.shape = labels, value, labels.shape

    def mask(self) -> np.ndarray:
        return self.labels.labels == self.value

    def encode(self) -> Encoded:
        return self.labels.encode(self.value)
