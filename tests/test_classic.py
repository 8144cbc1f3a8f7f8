"""The weights-free `classic` embedders (v1, v2): statistics against numpy, shapes, and
their k-NN accuracy on real CamVid (slow, skipped without ../shared/data)."""
from __future__ import annotations

import numpy as np
import pytest

from knnclip_core.embedders import get_embedder
from knnclip_core.embedders.classic import FEATURE_NAMES, N_CHANNELS, dense_channels, statistics


def test_statistics_are_means_and_stds_inside_the_mask():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[5:30, 10:50] = True
    chans = dense_channels(image)
    assert chans.shape == (N_CHANNELS, 40, 60)
    stats = statistics(chans[:, mask].mean(1)[None])[0]
    L = chans[0][mask]
    assert stats[FEATURE_NAMES.index("L_mean")] == pytest.approx(L.mean(), rel=1e-4)
    assert stats[FEATURE_NAMES.index("L_std")] == pytest.approx(L.std(), rel=1e-3)
    rows = np.nonzero(mask)[0] / 40
    assert stats[FEATURE_NAMES.index("row_std")] == pytest.approx(rows.std(), rel=1e-3)
    assert stats[6:26].sum() == pytest.approx(3.0, abs=1e-4)  # three histograms, each sums to 1


def test_v2_statistics_against_numpy():
    from skimage.color import rgb2lab

    from knnclip_core.embedders.classic_v2 import LBP_SCALES, ORIENT_BINS, extra_channels, extra_statistics

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[10:40, 5:30] = True
    chans = extra_channels(image)
    stats = extra_statistics(chans[:, mask].mean(1)[None])[0]
    L = rgb2lab(image)[..., 0]
    lz = ((L - L.mean()) / (L.std() + 1e-3))[mask]
    assert stats[0] == pytest.approx(lz.mean(), abs=1e-4) and stats[1] == pytest.approx(lz.std(), rel=1e-3)
    cols = np.nonzero(mask)[1] / 64
    assert stats[8] == pytest.approx(np.abs(cols - 0.5).mean(), rel=1e-4)  # distance from the centre column
    assert stats[9] == pytest.approx(cols.std(), rel=1e-3)
    assert stats[15:15 + ORIENT_BINS].sum() == pytest.approx(1.0, abs=1e-5)
    lbp, start = stats[15 + ORIENT_BINS:], 0
    for p, _ in LBP_SCALES:  # square roots of bin fractions: squares sum to 1 per scale
        assert (lbp[start:start + p + 2] ** 2).sum() == pytest.approx(1.0, abs=1e-5)
        start += p + 2


@pytest.mark.parametrize("name", ["classic", "classic-v2"])
def test_classic_vectors_are_unit_and_separate_colours(name):
    emb = get_embedder(name)
    image = np.zeros((64, 96, 3))
    image[:32] = (30, 90, 200)  # blue sky
    image[32:] = (90, 90, 90)  # grey road
    image = (image + np.random.default_rng(0).normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)  # sensor noise
    top, bottom = np.zeros((64, 96), bool), np.zeros((64, 96), bool)
    top[:32], bottom[32:] = True, True
    v = emb.embed_masks(image, [top, bottom, top])
    assert v.shape == (3, emb.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[0], v[2], atol=1e-6)
    assert v[0] @ v[1] < 0.5


def test_large_images_are_downscaled_to_max_side():
    emb = get_embedder("classic")
    assert emb.grid_hw(1280, 960) == (640, 480) and emb.grid_hw(360, 480) == (360, 480)


@pytest.mark.slow
@pytest.mark.data
def test_classic_knn_accuracy_on_camvid(shared_data):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from classic_accuracy import evaluate

    root = shared_data / "camvid"
    if not root.is_dir():
        from conftest import require_or_skip

        require_or_skip(f"{root} not found")
    result = evaluate(root, train_limit=120, val_limit=40, backbone="classic")
    assert result["accuracy"] >= 0.88, result
    v2 = evaluate(root, train_limit=120, val_limit=40, backbone="classic-v2")
    assert v2["accuracy"] >= 0.88, v2
    # v2 carries better to a drive the memory has not seen, on every left-out drive
    for seq, r in v2["cross_sequence"].items():
        assert r["accuracy"] > result["cross_sequence"][seq]["accuracy"] + 0.03, (seq, r, result["cross_sequence"])
