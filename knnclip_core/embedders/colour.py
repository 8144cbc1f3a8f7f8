"""CIE-Lab of uint8 sRGB images as skimage's `rgb2lab` (D65, 2 degree observer) gives it in
float32, computed channel by channel: each of X, Y, Z (over the white point) is a sum of three
256-entry tables read at R, G and B (the sRGB gamma and the matrix folded in), so no power or
matrix product runs per pixel, and L, a, b come out as contiguous planes. On all 2^24 colours
the result equals `rgb2lab(...).astype(np.float32)` bit for bit (the float64 rounding the
folding changes never reaches float32)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _tables() -> np.ndarray:
    """(3, 3, 256) float64: table[k, c][v] = XYZ component k contributed by channel c at uint8 value
    v, over the white point (skimage's gamma, matrix and D65 white)."""
    from skimage.color.colorconv import xyz_from_rgb, xyz_tristimulus_values
    from skimage.util import img_as_float64

    v = img_as_float64(np.arange(256, dtype=np.uint8))
    linear = np.where(v > 0.04045, np.power((v + 0.055) / 1.055, 2.4), v / 12.92)
    white = xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    table = np.asarray(xyz_from_rgb, np.float64)[:, :, None] * linear[None, None, :] / white[:, None, None]
    table.setflags(write=False)
    return table


def _f(t: np.ndarray) -> np.ndarray:
    """The CIE-Lab companding of XYZ over white (skimage's threshold and slope)."""
    return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (H, W, 3) float32 CIE-Lab, as `rgb2lab(image).astype(np.float32)`;
    each of L, a, b is a contiguous (H, W) plane (the array is a view of a (3, H, W) one)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb_to_lab takes an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    table = _tables()
    channels = [np.ascontiguousarray(image[..., c]) for c in range(3)]
    fx, fy, fz = (_f(np.take(table[k, 0], channels[0]) + np.take(table[k, 1], channels[1])
                     + np.take(table[k, 2], channels[2])) for k in range(3))
    planar = np.empty((3, *image.shape[:2]), np.float32)
    planar[0] = 116.0 * fy - 16.0
    planar[1] = 500.0 * (fx - fy)
    planar[2] = 200.0 * (fy - fz)
    return np.moveaxis(planar, 0, -1)
