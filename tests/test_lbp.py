"""The vectorised uniform LBP against skimage's, bit for bit, and classic-v2's channels with it
against the channels computed with skimage's (the vectors of a memory must not move)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.feature import local_binary_pattern

from benchmarks.classic_today import today_dense_channels_v2
from knnclip_core.embedders.classic import FEATURE_NAMES
from knnclip_core.embedders.classic_v2 import LBP_SCALES, dense_channels_v2
from knnclip_core.embedders.lbp import uniform_lbp

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "train"


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (37, 53)).astype(np.uint8),  # odd sizes, noise
              np.full((20, 30), 7, np.uint8),  # flat: every neighbour ties with the centre
              rng.integers(0, 3, (64, 64)).astype(np.uint8),  # few levels: many ties
              np.tile(np.arange(40, dtype=np.uint8) * 6, (25, 1))]  # a ramp: ties only along rows
    yy, xx = np.mgrid[0:50, 0:70]
    images.append((((yy - 25) ** 2 + (xx - 35) ** 2) < 400).astype(np.uint8) * 200)  # a disc's edge
    return images


@pytest.mark.parametrize("points,radius", [*LBP_SCALES, (16, 2.5), (4, 1.5), (8, 0.5)])
def test_uniform_lbp_is_skimage_bit_for_bit(points, radius):
    for image in _images():
        ours = uniform_lbp(image, points, radius)
        theirs = local_binary_pattern(image, points, radius, "uniform").astype(np.int64)
        assert ours.shape == image.shape
        np.testing.assert_array_equal(ours.astype(np.int64), theirs)


def test_uniform_lbp_refuses_more_points_than_its_table():
    with pytest.raises(ValueError, match="at most 16"):
        uniform_lbp(np.zeros((8, 8), np.uint8), 24, 3.0)


def test_classic_v2_channels_equal_those_made_with_skimage_lbp():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)]
    if CAMVID.is_dir():
        from PIL import Image

        images += [np.asarray(Image.open(f).convert("RGB")) for f in sorted(CAMVID.glob("*.png"))[:2]]
    for image in images:
        ours = dense_channels_v2(image)
        assert ours.dtype == np.float32 and ours.shape == (90, *image.shape[:2])
        today = today_dense_channels_v2(image)  # the code this replaced
        # Bit for bit except the |LoG| planes: a spectrum replaces scipy's direct convolution there,
        # so they agree to float32 rounding of their own range (tests/test_laplace.py checks the filter).
        log = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("abslog")]
        rest = np.setdiff1d(np.arange(ours.shape[0]), log)
        np.testing.assert_array_equal(ours[rest], today[rest])
        for i in log:
            np.testing.assert_allclose(ours[i], today[i], rtol=0, atol=1e-6 * float(np.abs(today[i]).max()))
