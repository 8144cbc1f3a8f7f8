"""Image checks and resizing shared by the proposal generators."""
from __future__ import annotations

from typing import Optional

import numpy as np


def check_image(image: np.ndarray) -> tuple[int, int]:
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, "image must be HxWx3 uint8"
    return image.shape[0], image.shape[1]


def downscaled(image: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """The image with its longer side at most `max_side` (area-averaged), or itself."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    from PIL import Image

    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BOX))


def upscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) label map to `shape` (H, W)."""
    h, w = labels.shape
    if (h, w) == tuple(shape):
        return labels
    rows = np.minimum((np.arange(shape[0]) + 0.5) * h / shape[0], h - 1).astype(np.int64)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * w / shape[1], w - 1).astype(np.int64)
    return labels[rows[:, None], cols[None, :]]
