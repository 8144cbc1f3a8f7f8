"""Mask pooling against a brute-force numpy oracle."""
import numpy as np

from knnclip_core.embedders.pooling import area_matrix, mask_weights, pool


def test_area_matrix_rows_sum_to_one_and_cover_exactly():
    for n_in, n_out in [(10, 3), (7, 7), (360, 14), (5, 8)]:
        a = area_matrix(n_in, n_out)
        assert a.shape == (n_out, n_in)
        np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-6)
        # each input pixel is spread over output cells by exactly n_out / n_in of a cell
        np.testing.assert_allclose(a.sum(0), n_out / n_in, atol=1e-6)


def test_mask_weights_are_area_fractions():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 12, 20)) > 0.5
    w = mask_weights(masks, (3, 5)).reshape(4, 3, 5)
    oracle = masks.reshape(4, 3, 4, 5, 4).mean(axis=(2, 4))  # 4x4 pixel cells
    np.testing.assert_allclose(w, oracle, atol=1e-6)


def test_pool_equals_brute_force_mean_inside_mask():
    rng = np.random.default_rng(1)
    gh, gw, d, h, w = 4, 6, 16, 32, 48
    feats = rng.standard_normal((gh * gw, d)).astype(np.float32)
    masks = rng.random((5, h, w)) > 0.7
    masks[0] = False
    masks[0, 3:9, 10:30] = True  # a rectangle across cell borders
    pooled = pool(mask_weights(masks, (gh, gw)), feats)
    up = feats.reshape(gh, gw, d).repeat(h // gh, 0).repeat(w // gw, 1)  # nearest upsampling
    for i, m in enumerate(masks):
        ref = up[m].mean(0)
        ref /= np.linalg.norm(ref)
        np.testing.assert_allclose(pooled[i], ref, atol=1e-5)


def test_empty_mask_gives_zero_row():
    feats = np.ones((4, 3), np.float32)
    out = pool(mask_weights(np.zeros((1, 4, 4), bool), (2, 2)), feats)
    assert out.shape == (1, 3) and not out.any()
