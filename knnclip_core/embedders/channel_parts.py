"""Per-pixel channels kept in two kinds, so that mask pooling need not write every channel.

A classic version's channels are planes (one (H, W) value per pixel: colour, gradients,
position) and code maps (one integer per pixel, standing for the indicator channels
[code == k] for k < n, optionally times a weight plane: histogram bins, orientation bins, LBP
codes). `ChannelParts.dense()` writes all of them as (C, H, W) float32, as the neural
embedders' features are; `ChannelParts.pooled(weights)` gives the same per-mask means without
writing the indicator planes: the planes through one product with the mask weights, each code
map by counting its codes over every mask's non-zero cells (one `bincount`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union

import numpy as np


@dataclass(frozen=True)
class Codes:
    """A code map (H, W) of ints in 0..n-1: channel k is [codes == k], times `weight` if given."""

    codes: np.ndarray
    n: int
    weight: Optional[np.ndarray] = None

    def channel(self, k: int) -> np.ndarray:
        hit = self.codes == k
        return hit if self.weight is None else self.weight * hit


Part = Union[np.ndarray, Codes]


@lru_cache(maxsize=8)
def positions(h: int, w: int) -> dict[str, np.ndarray]:
    """Read-only (H, W) float32 position planes of an image size, made once per size and shared
    by the versions that use them (the same array is pooled once): row y = i / h and y^2, y^3,
    y^4; column x = j / w and x^2; xc = |x - 0.5| and xc^2."""
    y = np.broadcast_to((np.arange(h, dtype=np.float32) / h)[:, None], (h, w))
    x = np.broadcast_to((np.arange(w, dtype=np.float32) / w)[None, :], (h, w))
    xc = np.abs(x - 0.5)
    planes = {"y": y, "y2": y * y, "y3": y ** 3, "y4": y ** 4, "x": x, "x2": x * x, "xc": xc, "xc2": xc * xc}
    for a in planes.values():
        a.setflags(write=False)
    return planes


def bin_codes(values: np.ndarray, lo: float, hi: float, bins: int) -> Codes:
    """Histogram bins of `values` over [lo, hi) as codes (values outside go to the end bins)."""
    return Codes(np.clip(((values - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1), bins)


class MaskCells:
    """The non-zero area weights of n masks on a grid, as (mask, cell, weight) triples: any
    masks, overlapping or with fractional weights."""

    def __init__(self, weights: np.ndarray):
        self.n, cells = weights.shape
        flat = np.flatnonzero(weights)
        self.rows, self.cols = np.divmod(flat, cells)
        self.vals = weights.reshape(-1)[flat].astype(np.float64)

    def count(self, part: Codes) -> np.ndarray:
        """(n, part.n) float64: every mask's weighted sum of each code's indicator channel."""
        keys = self.rows * part.n + part.codes.reshape(-1)[self.cols]
        vals = self.vals if part.weight is None else self.vals * part.weight.reshape(-1)[self.cols]
        return np.bincount(keys, weights=vals, minlength=self.n * part.n).reshape(self.n, part.n)


class LabelCells:
    """Masks that are 0/1 and disjoint (semantic segments) as one label per cell (n: none), so
    a code map is counted over the whole grid at once, without gathering."""

    def __init__(self, labels: np.ndarray, n: int):
        self.labels, self.n = labels, n

    @classmethod
    def of(cls, weights: np.ndarray) -> Optional["LabelCells"]:
        """The label map of (n, cells) weights, or None when they overlap or are not 0/1."""
        n = weights.shape[0]
        if n == 0 or np.count_nonzero(weights == 1.0) != np.count_nonzero(weights):
            return None
        if weights.sum(axis=0).max() > 1.0:
            return None
        index = np.arange(1, n + 1, dtype=np.float32) @ weights  # exact: one term per cell at most
        return cls(np.where(index == 0, n, index - 1).astype(np.int64), n)

    def count(self, part: Codes) -> np.ndarray:
        """(n, part.n) float64: every mask's (weighted) count of each code."""
        keys = self.labels * part.n + part.codes.reshape(-1)
        weight = None if part.weight is None else part.weight.reshape(-1)
        counts = np.bincount(keys, weights=weight, minlength=(self.n + 1) * part.n)
        return counts[:self.n * part.n].reshape(self.n, part.n).astype(np.float64)


def mask_cells(weights: np.ndarray):
    """The fastest exact counter of code maps over these masks (`LabelCells` or `MaskCells`)."""
    return LabelCells.of(weights) or MaskCells(weights)


class ChannelParts:
    """An image's channels in order: each part a plane (one channel) or `Codes` (n channels)."""

    def __init__(self, parts: list[Part]):
        self.parts = list(parts)

    def __add__(self, other: "ChannelParts") -> "ChannelParts":
        return ChannelParts(self.parts + other.parts)

    @property
    def n_channels(self) -> int:
        return sum(p.n if isinstance(p, Codes) else 1 for p in self.parts)

    def as_list(self) -> list[np.ndarray]:
        """Every channel as an (H, W) array (some bool or broadcast)."""
        out: list[np.ndarray] = []
        for p in self.parts:
            out += [p.channel(k) for k in range(p.n)] if isinstance(p, Codes) else [p]
        return out

    def dense(self) -> np.ndarray:
        """(C, H, W) float32, every channel written once into one array."""
        shape = next(p.codes if isinstance(p, Codes) else p for p in self.parts).shape
        out = np.empty((self.n_channels, *shape), np.float32)
        for i, c in enumerate(self.as_list()):
            out[i] = c
        return out

    def pooled(self, weights: np.ndarray) -> np.ndarray:
        """(n, C) float32 per-mask means for (n, H * W) area weights on this image's grid: what
        `pooling.pool(weights, dense().reshape(C, -1).T, normalize=False)` gives."""
        weights = np.asarray(weights, np.float32)
        n = weights.shape[0]
        total = np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        out = np.empty((n, self.n_channels), np.float32)
        row_of: dict[int, int] = {}  # id(plane) -> its row: a shared plane is pooled once
        planes: list[np.ndarray] = []
        plane_cols, plane_rows = [], []
        cells = mask_cells(weights) if any(isinstance(p, Codes) for p in self.parts) else None
        col = 0
        for p in self.parts:
            if isinstance(p, Codes):
                out[:, col:col + p.n] = cells.count(p) / total
                col += p.n
                continue
            if id(p) not in row_of:
                row_of[id(p)] = len(planes)
                planes.append(p)
            plane_cols.append(col)
            plane_rows.append(row_of[id(p)])
            col += 1
        if planes:
            stack = np.empty((len(planes), weights.shape[1]), np.float32)
            for i, p in enumerate(planes):
                stack[i].reshape(p.shape)[...] = p
            out[:, plane_cols] = ((weights @ stack.T) / total)[:, plane_rows]
        return out
