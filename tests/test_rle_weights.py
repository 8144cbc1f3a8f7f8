"""Mask weights straight from COCO RLE against the decoded-mask oracle (pycocotools +
exact area weighting)."""
from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from knnclip_core.embedders.pooling import mask_weights
from knnclip_core.embedders.rle_weights import parse_counts, rle_area_weights


def encode(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def random_masks(rng, h, w):
    yield rng.random((h, w)) < rng.uniform(0.05, 0.95)  # many short runs, large counts deltas
    blob = np.zeros((h, w), bool)
    blob[rng.integers(0, h):, rng.integers(0, w):] = True  # long runs across columns
    yield blob
    yield np.zeros((h, w), bool)
    yield np.ones((h, w), bool)


@pytest.mark.parametrize("seed", range(6))
def test_weights_equal_decoded_mask_oracle(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    grid = (int(rng.integers(1, 12)), int(rng.integers(1, 12)))
    masks = list(random_masks(rng, h, w))
    rles = [encode(m) for m in masks]
    for rle, m in zip(rles, masks):  # the oracle's own round trip
        assert (mask_utils.decode({"size": [h, w], "counts": rle.encode()}) == m).all()
    got = rle_area_weights(rles, h, w, grid)
    assert got.shape == (len(masks), grid[0] * grid[1]) and got.dtype == np.float32
    np.testing.assert_allclose(got, mask_weights(np.stack(masks), grid), atol=1e-6)


def test_camvid_sized_masks_and_grid_larger_than_image():
    rng = np.random.default_rng(7)
    labels = np.repeat(np.repeat(rng.integers(0, 6, (9, 12)), 40, 0), 40, 1)  # 360 x 480
    masks = [labels == c for c in range(6)]
    for grid in [(7, 7), (14, 14), (16, 23), (400, 500)]:
        np.testing.assert_allclose(rle_area_weights([encode(m) for m in masks], 360, 480, grid),
                                   mask_weights(np.stack(masks), grid), atol=1e-6)


def test_parse_counts_matches_uncompressed_rle():
    rng = np.random.default_rng(3)
    m = rng.random((37, 23)) < 0.4
    flat = m.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(np.concatenate(([0], flat, [1 - flat[-1]]))))  # runs from 0s
    runs = np.diff(np.concatenate(([0], change)))
    counts = parse_counts(encode(m))
    assert counts.sum() == m.size
    np.testing.assert_array_equal(counts[: len(runs)], runs[: len(counts)])
    # uncompressed counts (COCO's list form) give the same weights
    np.testing.assert_allclose(rle_area_weights([counts.tolist()], 37, 23, (5, 4)),
                               rle_area_weights([encode(m)], 37, 23, (5, 4)), atol=1e-7)


@pytest.mark.parametrize("counts, reason", [("0000!", "outside the COCO alphabet"),
                                            ("0k", "ends inside a count")])
def test_malformed_counts_are_refused(counts, reason):
    with pytest.raises(ValueError, match=reason):
        parse_counts(counts)


def test_runs_that_do_not_cover_the_image_are_refused():
    with pytest.raises(ValueError, match="mask 0: RLE runs cover 100 pixels, the image has 120"):
        rle_area_weights([encode(np.ones((10, 10), bool))], 10, 12, (2, 2))
