"""CIE-Lab of uint8 sRGB images: skimage's `rgb2lab` (D65, 2 degree observer) step for step,
with the sRGB gamma read from a 256-entry table (computed by skimage's own expression) instead
of a power per pixel, and no boolean-mask copies."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _constants() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(linear sRGB of each uint8 value, XYZ-from-RGB matrix transposed, the D65 white point)."""
    from skimage.color.colorconv import xyz_from_rgb, xyz_tristimulus_values
    from skimage.util import img_as_float64

    v = img_as_float64(np.arange(256, dtype=np.uint8))
    linear = np.where(v > 0.04045, np.power((v + 0.055) / 1.055, 2.4), v / 12.92)
    white = xyz_tristimulus_values(illuminant="D65", observer="2", dtype=np.float64)
    for a in (linear, white):
        a.setflags(write=False)
    return linear, xyz_from_rgb.T.astype(np.float64), white


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (H, W, 3) float32 CIE-Lab, as `rgb2lab(image).astype(float32)`."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"rgb_to_lab takes an HxWx3 uint8 image, got {image.shape} {image.dtype}")
    linear, matrix, white = _constants()
    xyz = (linear[image].reshape(-1, 3) @ matrix).reshape(image.shape)  # as skimage's (H, W, 3) @ (3, 3)
    xyz /= white
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.empty(image.shape, np.float32)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab
