"""Label Studio's brush RLE (the `rle` of a `brushlabels` result) and CVAT's mask RLE.

Label Studio packs an RGBA image (H*W*4 bytes, mask pixels 255 in every channel) with
thi-ng's rle-pack: a 32-bit value count, the word size minus one (5 bits), four run-size
widths minus one (4 bits each), then chunks of `flag (1) | width index (2) | run - 1 |`
followed by one word (flag 1: a run of one value) or `run` words (flag 0: literals).
Bits are big-endian, the last byte zero-padded. `encode_brush` writes runs only, as
label-studio-converter's `mask2rle` does, but with numpy instead of bit strings.

CVAT's `<mask rle="...">` counts alternate 0s and 1s (0s first) over the mask's bounding
box (left, top, width, height), row by row.
"""
from __future__ import annotations

import numpy as np

WORD = 8
RLE_SIZES = (3, 4, 8, 16)


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The big-endian bits of each value in its width, concatenated (uint8 0/1)."""
    values, widths = np.asarray(values, np.uint64), np.asarray(widths, np.int64)
    total = int(widths.sum())
    owner = np.repeat(np.arange(len(widths)), widths)
    starts = np.cumsum(widths) - widths
    shift = (widths[owner] - 1 - (np.arange(total) - starts[owner])).astype(np.uint64)
    return ((values[owner] >> shift) & np.uint64(1)).astype(np.uint8)


def encode_brush(mask: np.ndarray) -> list[int]:
    """Label Studio brush RLE (list of byte values) of a bool (H, W) mask."""
    flat = np.repeat(np.where(mask.ravel(), 255, 0).astype(np.uint8), 4)
    n = flat.size
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [n]]))
    values = flat[starts]
    # runs over 2**16 split into chunks of 2**16 (the widest run field)
    pieces = (lengths + 65535) // 65536
    rep = np.repeat(np.arange(len(lengths)), pieces)
    first = np.concatenate([[0], np.cumsum(pieces)[:-1]])
    chunk = np.full(len(rep), 65536, np.int64)
    last = first + pieces - 1
    chunk[last] = lengths - (pieces - 1) * 65536
    vals = values[rep]
    idx = np.searchsorted(np.array([8, 16, 256, 65536]), chunk)  # width index: run <= 8, 16, 256, 65536
    width = np.array(RLE_SIZES)[idx]
    flag = (chunk > 1).astype(np.int64)  # a single value is written as a one-word literal
    fields_v = np.stack([flag, idx, chunk - 1, vals.astype(np.int64)], axis=1).ravel()
    fields_w = np.stack([np.ones_like(idx), np.full_like(idx, 2), width, np.full_like(idx, WORD)], axis=1).ravel()
    head_v = [n, WORD - 1, *(s - 1 for s in RLE_SIZES)]
    head_w = [32, 5, 4, 4, 4, 4]
    bits = np.concatenate([_bits(head_v, head_w), _bits(fields_v, fields_w)])
    return np.packbits(bits).tolist()


def decode_brush(rle, height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of a Label Studio brush RLE (alpha channel > 0). Raises ValueError
    when the RLE is malformed or its value count is not H*W*4."""
    data = np.asarray(rle)
    if data.ndim != 1 or data.size < 7 or data.dtype.kind not in "iu" or data.min() < 0 or data.max() > 255:
        raise ValueError("the brush RLE is not a list of byte values")
    bits = np.unpackbits(data.astype(np.uint8))
    weights = {w: (1 << np.arange(w - 1, -1, -1)).astype(np.int64) for w in (1, 2, 3, 4, 5, 8, 16, 32)}

    pos = 0

    def read(w: int) -> int:
        nonlocal pos
        if w not in weights:
            weights[w] = (1 << np.arange(w - 1, -1, -1)).astype(np.int64)
        if pos + w > bits.size:
            raise ValueError("the brush RLE ends in the middle of a value")
        v = int(bits[pos:pos + w] @ weights[w])
        pos += w
        return v

    num = read(32)
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    if num != height * width * 4:
        raise ValueError(f"the brush RLE holds {num} values, not {height}x{width}x4 = {height * width * 4}")
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        flag = read(1)
        j = i + 1 + read(sizes[read(2)])
        if j > num:
            raise ValueError("the brush RLE runs past its value count")
        if flag:
            out[i:j] = read(word)
            i = j
        else:
            for k in range(i, j):
                out[k] = read(word)
            i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


def encode_cvat(mask: np.ndarray) -> tuple[list[int], tuple[int, int, int, int]]:
    """CVAT mask RLE of a non-empty bool mask: (counts, (left, top, width, height))."""
    ys, xs = np.nonzero(mask)
    left, top, right, bottom = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    crop = mask[top:bottom + 1, left:right + 1].ravel()
    change = np.flatnonzero(crop[1:] != crop[:-1]) + 1
    bounds = np.concatenate([[0], change, [crop.size]])
    counts = np.diff(bounds).tolist()
    if crop[0]:
        counts = [0] + counts
    return counts, (left, top, right - left + 1, bottom - top + 1)


def decode_cvat(counts: list[int], box: tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """Bool (H, W) mask of a CVAT mask RLE over box (left, top, width, height). Raises
    ValueError when the counts do not fill the box or the box leaves the image."""
    left, top, w, h = box
    if min(left, top) < 0 or w <= 0 or h <= 0 or left + w > width or top + h > height:
        raise ValueError(f"the mask box {box} does not lie inside the {width}x{height} image")
    counts = np.asarray(counts, np.int64)
    if counts.size == 0 or counts.min() < 0 or int(counts.sum()) != w * h:
        raise ValueError(f"the mask counts add up to {int(counts.sum()) if counts.size else 0}, not {w}x{h} = {w * h}")
    values = np.arange(counts.size) % 2 == 1
    crop = np.repeat(values, counts).reshape(h, w)
    out = np.zeros((height, width), bool)
    out[top:top + h, left:left + w] = crop
    return out
