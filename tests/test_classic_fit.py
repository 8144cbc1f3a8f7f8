"""Fitting the classic standardisation constants: numpy oracle, the product's vectors from
raw statistics, and (on real data) the committed constants regenerated from CamVid train."""
from __future__ import annotations

import numpy as np
import pytest

from knnclip_core.embedders import get_embedder, get_spec
from knnclip_core.embedders.classic_embedder import CLASSIC_VERSIONS, classic_version
from knnclip_core.embedders.classic_fit import (embed_from_statistics, fit_constants, raw_statistics,
                                                with_constants)


def blocks(seed: int):
    """An image in three regions whose sizes, contrast and brightness differ with the seed, so
    no statistic (a row spread included) is the same for every region."""
    rng = np.random.default_rng(seed)
    top, left = 16 + 4 * seed, 24 + 6 * seed
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[:top, :left] = rng.integers(0, 256, 3)
    image[top:] = (image[top:] * rng.uniform(0.2, 1.0) + rng.integers(0, 50)).astype(np.uint8)
    image[:top, left:] = (image[:top, left:] * rng.uniform(0.2, 1.0)).astype(np.uint8)
    masks = [np.zeros((48, 64), bool) for _ in range(3)]
    masks[0][:top, :left] = True
    masks[1][top:, :] = True
    masks[2][:top, left:] = True
    return image, masks


def test_fit_is_mean_and_population_std():
    stats = np.random.default_rng(0).normal(3.0, 2.0, (500, 4))
    mu, sd = fit_constants(stats, decimals=None)
    np.testing.assert_allclose(mu, stats.mean(0), rtol=1e-6)
    np.testing.assert_allclose(sd, np.sqrt(((stats - stats.mean(0)) ** 2).mean(0)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] are constant"):
        fit_constants(np.c_[stats[:, :1], np.ones(500)])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] are constant"):  # float32 jitter is no spread
        fit_constants(np.c_[stats[:, :1], np.float32(0.1442122) + np.float32(3e-7) * (np.arange(500) % 2)])


@pytest.mark.parametrize("name", ["classic", "classic-v2"])
def test_vectors_from_statistics_are_the_embedders(name):
    items = [blocks(s) for s in range(3)]
    stats = raw_statistics(name, items)
    version = classic_version(get_spec(name))
    expected = np.concatenate([get_embedder(name).embed_masks(img, masks) for img, masks in items])
    np.testing.assert_allclose(embed_from_statistics(version, stats), expected, atol=1e-5)
    refit = with_constants(version, *fit_constants(stats, decimals=None))
    z = refit.standardise(stats) / refit.weights
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    assert CLASSIC_VERSIONS.get(version.name) is version  # refitting leaves the registered version alone


@pytest.mark.slow
@pytest.mark.data
def test_fit_script_regenerates_the_committed_v1_constants(shared_data):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fit_classic_constants import fit

    r = fit(shared_data / "camvid", "classic")
    assert r["segments"] == 3534 and r["reproduces_committed"], r["max_deviation_in_sd"]
