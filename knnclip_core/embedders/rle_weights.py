"""Area weights on a feature grid straight from COCO RLE, without decoding full masks.

A COCO RLE lists alternating runs of 0s and 1s over the column-major pixel order. Each
run of 1s is cut at column boundaries into pieces (column c, rows r0..r1). With
`cum[r]` = the summed area weights of rows < r (from `pooling.area_matrix`), a piece adds
`(cum[r1] - cum[r0]) x area_matrix(W)[:, c]` to the grid: the same numbers as
`mask_weights(decode(rle), grid)`, at a cost set by the number of runs, not of pixels.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence, Union

import numpy as np

from .pooling import area_matrix

Counts = Union[str, bytes, Sequence[int], np.ndarray]


def parse_counts(counts: Counts) -> np.ndarray:
    """COCO RLE counts (compressed string, or a list of run lengths) -> int64 run lengths.

    The compressed form (pycocotools' `rleToString`) stores each count in 5-bit groups,
    least significant first, as characters from '0'; bit 0x20 marks a continuation and bit
    0x10 of the last group the sign; counts after the third are deltas from two before.
    """
    if not isinstance(counts, (str, bytes)):
        return np.asarray(counts, dtype=np.int64)
    raw = np.frombuffer(counts.encode() if isinstance(counts, str) else counts, np.uint8).astype(np.int64) - 48
    if raw.size == 0:
        return np.zeros(0, np.int64)
    if raw.min() < 0 or raw.max() > 63:
        raise ValueError("RLE counts string has characters outside the COCO alphabet")
    last = (raw & 0x20) == 0  # the final character of each count
    if not last[-1]:
        raise ValueError("RLE counts string ends inside a count")
    starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
    group = np.cumsum(np.concatenate(([0], last[:-1].astype(np.int64))))
    shift = 5 * (np.arange(raw.size) - starts[group])
    values = np.add.reduceat((raw & 0x1F) << shift, starts)
    ends = np.flatnonzero(last)
    negative = (raw[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (shift[ends][negative] + 5)
    # counts[m] += counts[m - 2] for m > 2: running sums along the even chain from index 2
    # and the odd chain from index 1
    values[2::2] = np.cumsum(values[2::2])
    values[1::2] = np.cumsum(values[1::2])
    return values


@lru_cache(maxsize=64)
def _row_cumulative(height: int, gh: int) -> np.ndarray:
    """(height + 1, gh) float64: row r holds the area weights of input rows < r per grid row."""
    cum = np.zeros((height + 1, gh), np.float64)
    np.cumsum(area_matrix(height, gh).T.astype(np.float64), axis=0, out=cum[1:])
    return cum


def _runs(counts: Counts, i: int, height: int, width: int) -> np.ndarray:
    """Mask i's run lengths; ValueError when they do not cover the image exactly."""
    runs = parse_counts(counts)
    if runs.sum() != height * width or (runs < 0).any():
        raise ValueError(f"mask {i}: RLE runs cover {int(runs.sum())} pixels, the image has {height * width}")
    return runs


def _pieces(counts: Counts, i: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask i's runs of 1s cut at column boundaries: (column, top row, bottom row) arrays
    (rows top..bottom-1 of that column). ValueError when the runs do not cover the image."""
    runs = _runs(counts, i, height, width)
    edges = np.concatenate(([0], np.cumsum(runs)))
    start, end = edges[1:-1:2], edges[2::2]  # runs of 1s: odd positions
    keep = end > start
    start, end = start[keep], end[keep]
    first, last = start // height, (end - 1) // height
    pieces = last - first + 1
    col = np.repeat(first, pieces) + (np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces))
    top = np.clip(np.repeat(start, pieces) - col * height, 0, height)
    bottom = np.clip(np.repeat(end, pieces) - col * height, 0, height)
    return col, top, bottom


def _decode_into(out: np.ndarray, counts: Counts, i: int) -> None:
    """Mask i decoded into `out` (height, width) float32: 1.0 inside, 0.0 outside."""
    height, width = out.shape
    runs = _runs(counts, i, height, width)
    ones = (np.arange(runs.size) % 2).astype(np.float32)  # runs alternate 0s and 1s, 0s first
    out[:] = np.repeat(ones, runs).reshape(width, height).T  # column-major pixel order


def rle_area_weights(rles: Sequence[Counts], height: int, width: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """Area weights of every mask on the (gh, gw) grid, from its RLE counts.

    Returns (n, gh * gw) float32, equal to `mask_weights(decoded masks, grid_hw)`.
    Raises ValueError when a mask's runs do not add up to height * width.
    """
    gh, gw = grid_hw
    out = np.zeros((len(rles), gh, gw), np.float32)
    if not len(rles):
        return out.reshape(0, gh * gw)
    if (gh, gw) == (height, width):  # the grid is the image: the weights are the masks
        for i, counts in enumerate(rles):
            _decode_into(out[i], counts, i)
        return out.reshape(len(rles), gh * gw)
    return rle_area_weights_by_runs(rles, height, width, grid_hw)


def rle_area_weights_by_runs(rles: Sequence[Counts], height: int, width: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """`rle_area_weights` for any grid through the column pieces of the runs (one product per
    mask); the only path before masks on their own grid were decoded directly."""
    gh, gw = grid_hw
    out = np.zeros((len(rles), gh, gw), np.float32)
    cum = _row_cumulative(height, gh)
    col_weights = area_matrix(width, gw).T  # (width, gw)
    for i, counts in enumerate(rles):
        col, top, bottom = _pieces(counts, i, height, width)
        if col.size:
            out[i] = (cum[bottom] - cum[top]).T @ col_weights[col]  # (gh, pieces) @ (pieces, gw)
    return out.reshape(len(rles), gh * gw)
