"""Uniform local binary patterns, vectorised: the codes of skimage's
`local_binary_pattern(image, P, R, "uniform")`, bit for bit, in whole-image array operations.

skimage visits pixels one by one; here each of the P circle points is one shifted, bilinearly
interpolated copy of the image, computed with the same float64 operations in the same order
(so ties with the centre fall the same way), zero outside the image as skimage's constant mode.
As in skimage, a pattern is uniform when its bits change at most twice along the P points taken
in order (not wrapping round); a uniform pattern's code is its number of ones, any other is P + 1.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def circle_offsets(points: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) offsets of the circle points, rounded to 5 decimals as skimage rounds them."""
    angles = 2 * np.pi * np.arange(points) / points
    return np.round(-radius * np.sin(angles), 5), np.round(radius * np.cos(angles), 5)


def _fractions(n: int, offset: float) -> np.ndarray:
    """Fraction of (i + offset) for i in 0..n-1, computed per position as skimage computes it
    (the low bits differ from the fraction of `offset` alone)."""
    pos = np.arange(n, dtype=np.float64) + offset
    return pos - np.floor(pos)


def _shifted(padded: np.ndarray, pad: int, shape: tuple[int, int], dr: int, dc: int) -> np.ndarray:
    """View of the image moved by whole pixels: out[r, c] = image[r + dr, c + dc], 0 outside."""
    h, w = shape
    return padded[pad + dr:pad + dr + h, pad + dc:pad + dc + w]


@lru_cache(maxsize=None)
def _uniform_table(points: int) -> np.ndarray:
    """Code of every bit pattern (bit i = circle point i): its ones if it changes at most twice
    along points 0..P-1, else P + 1."""
    patterns = np.arange(2 ** points)
    bits = (patterns[:, None] >> np.arange(points)) & 1
    changes = (bits[:, 1:] != bits[:, :-1]).sum(axis=1)
    table = np.where(changes <= 2, bits.sum(axis=1), points + 1).astype(np.uint8)
    table.setflags(write=False)  # cached and shared
    return table


def _column_blend(padded: np.ndarray, pad: int, width: int, dc: float) -> np.ndarray:
    """(H + 2 pad, W) float64: every padded row sampled at column c + dc, linear between the two
    whole-pixel columns; points sharing `dc` share it (their rows differ only by a shift)."""
    c0, c1 = int(np.floor(dc)), int(np.ceil(dc))
    fc = _fractions(width, dc)[None, :]
    out = (1 - fc) * padded[:, pad + c0:pad + c0 + width]
    out += fc * padded[:, pad + c1:pad + c1 + width]
    return out


def _at_least_centre(image: np.ndarray, dr: float, dc: float, padded: np.ndarray, pad: int,
                     blends: dict, bufs: tuple[np.ndarray, np.ndarray], centre: np.ndarray,
                     whole: np.ndarray) -> np.ndarray:
    """Bool (H, W): the image sampled at (r + dr, c + dc), bilinear and 0 outside, is >= the
    pixel (r, c) (skimage's `texture - centre >= 0`; for finite doubles the same as >=).

    The offsets have 5 decimals, so floor(r + dr) is r + floor(dr) for every row r: the four
    taps are whole-pixel shifts of the padded image; a whole-pixel offset needs no weights
    (1 * a + 0 * b is a exactly) and is compared in the image's own dtype (`centre`, `whole`: the
    image and its padded copy; exact for integers). The column blend of the taps (skimage's first step, the same
    float64 operations) is computed once per column offset."""
    h, w = image.shape
    r0, r1, c0, c1 = int(np.floor(dr)), int(np.ceil(dr)), int(np.floor(dc)), int(np.ceil(dc))
    if r0 == r1 and c0 == c1:
        return _shifted(whole, pad, (h, w), r0, c0) >= centre
    if dc not in blends:
        blends[dc] = _column_blend(padded, pad, w, dc)
    blend = blends[dc]
    top, bottom = bufs
    fr = _fractions(h, dr)[:, None]
    np.multiply(blend[pad + r0:pad + r0 + h], 1 - fr, out=top)
    np.multiply(blend[pad + r1:pad + r1 + h], fr, out=bottom)
    top += bottom
    return top >= image


def uniform_lbp(image: np.ndarray, points: int, radius: float) -> np.ndarray:
    """(H, W) uint8 uniform LBP codes in 0..points+1 of a 2-D image (module docstring)."""
    if points > 16:
        raise ValueError(f"uniform_lbp: at most 16 circle points, got {points}")
    given = np.asarray(image)
    img = np.ascontiguousarray(given, dtype=np.float64)
    pad = int(np.ceil(radius)) + 1
    padded = np.pad(img, pad)
    centre = given if given.dtype in (np.uint8, np.uint16, np.int16, np.int32) else img
    whole = padded if centre is img else np.pad(centre, pad)
    bufs = (np.empty_like(img), np.empty_like(img))
    blends: dict = {}
    pattern = np.zeros(img.shape, np.uint8 if points <= 8 else np.uint16)
    for i, (dr, dc) in enumerate(zip(*circle_offsets(points, radius))):
        bit = _at_least_centre(img, float(dr), float(dc), padded, pad, blends, bufs, centre, whole)
        pattern |= bit.view(np.uint8).astype(pattern.dtype, copy=False) << pattern.dtype.type(i)
    return _uniform_table(points)[pattern]
