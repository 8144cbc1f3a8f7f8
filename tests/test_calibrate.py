"""The confidence threshold T calibrated per release (knnclip_core/segment/calibrate.py): the
held-out split is by image (rows of one image never on both sides, an overlapping split is
refused), figures are measured against the other images only (brute-force numpy oracle), the
target picks T from the curve, and the rule that says which T a consumer uses."""
from __future__ import annotations

import numpy as np
import pytest

from knnclip_core.segment.calibrate import (SOURCE_OVERRIDE, SOURCE_PREDATES, SOURCE_RELEASE, calibrate,
                                            check_disjoint, choose_threshold, curve, resolve_threshold,
                                            split_by_image)
from knnclip_core.segment.segmenter import SegmentParams


def image_rows(n_images: int, per_image: int, seed: int):
    """Rows in clumps: every image has `per_image` near-identical rows (its own random centre on
    the sphere) and one class drawn at random, so an image's rows are each other's nearest
    neighbours while other images say nothing about its class. (xb, class names, image ids)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_images, 16))
    xb = np.repeat(centres, per_image, axis=0) + 0.01 * rng.normal(size=(n_images * per_image, 16))
    xb = (xb / np.linalg.norm(xb, axis=1, keepdims=True)).astype(np.float32)
    names = np.repeat(rng.choice(["cat", "dog"], n_images), per_image)
    ids = np.repeat([f"img{i:03d}" for i in range(n_images)], per_image)
    return xb, names, ids


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.5])
def test_rows_of_one_image_never_land_on_both_sides(seed, fraction):
    rng = np.random.default_rng(seed)
    ids = rng.choice([f"im{i}" for i in range(30)], size=200)  # rows of an image scattered through the table
    held, mem = split_by_image(ids, fraction, seed)
    assert sorted(np.concatenate([held, mem]).tolist()) == list(range(len(ids)))  # every row, once
    assert not set(ids[held]) & set(ids[mem])
    n_images = len(set(ids))
    assert len(set(ids[held])) == min(max(round(fraction * n_images), 1), n_images - 1)
    again, _ = split_by_image(ids, fraction, seed)
    assert np.array_equal(held, again)  # seeded


def test_an_overlapping_split_is_refused():
    ids = np.array(["a", "a", "b", "b", "c"])
    check_disjoint(ids, np.array([0, 1]), np.array([2, 3, 4]))  # by image: fine
    with pytest.raises(ValueError, match="image.*both sides"):
        check_disjoint(ids, np.array([0, 2]), np.array([1, 3, 4]))  # a row-level split leaks images
    with pytest.raises(ValueError, match="row"):
        check_disjoint(ids, np.array([0, 1]), np.array([1, 2]))
    with pytest.raises(ValueError, match="two images"):
        split_by_image(["x", "x", "x"], 0.2)
    with pytest.raises(ValueError, match="no image id"):
        split_by_image(["x", None, "y"], 0.2)


def test_calibration_measures_against_other_images_only():
    """k=1 oracle: the held-out accuracy at T=0 is the brute-force nearest neighbour among the
    other images' rows (about chance here), not among all other rows (1.0: an image's own rows
    would answer for it, the leak a row-level split or a row's own neighbours would have)."""
    xb, names, ids = image_rows(60, 4, seed=3)
    rec = calibrate(xb, names, ids, k=1, temperature=0.1, confidence_kind="similarity", value=0.9,
                    fraction=0.2, seed=5)
    held, mem = split_by_image(ids, 0.2, 5)
    sims = xb[held] @ xb[mem].T
    honest = float(np.mean(names[mem][sims.argmax(axis=1)] == names[held]))
    leaky_sims = xb[held] @ xb.T
    leaky_sims[np.arange(len(held)), held] = -np.inf  # not the row itself, but its own image's rows
    leaky = float(np.mean(names[leaky_sims.argmax(axis=1)] == names[held]))
    assert leaky == 1.0 and honest < 0.8
    assert rec["held_out"]["known_accuracy_no_threshold"] == pytest.approx(honest, abs=1e-4)
    s = rec["split"]
    assert (s["by"], s["seed"], s["fraction"], s["images"], s["held_out_images"]) == ("image", 5, 0.2, 60, 12)
    assert s["held_out_rows"] == 48 and s["memory_rows"] == 192
    assert not rec["met"] and rec["threshold"] == 0.0  # 0.9 is out of reach: retrieval always answers


def test_threshold_meets_the_target_on_the_curve():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    right = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    table = curve(conf, right)
    row = {round(t, 2): (a, u) for t, a, u in table}
    assert row[0.0] == (0.8, 0.0) and row[0.55] == (0.5, 0.5) and row[1.0] == (0.0, 1.0)
    # known accuracy >= 0.6: T = 0.5 keeps the 6 right rows at 0.5 and above (0.51 keeps 5 -> 0.5)
    assert choose_threshold(table, "known_accuracy", 0.6) == (0.5, True)
    assert choose_threshold(table, "known_accuracy", 0.7) == (0.4, True)
    assert choose_threshold(table, "known_accuracy", 0.85) == (0.0, False)
    assert choose_threshold(table, "unknown_rate", 0.2) == (0.3, True)  # 0.1, 0.2 below: 2 of 10
    with pytest.raises(ValueError, match="target"):
        choose_threshold(table, "f1", 0.5)


def test_which_threshold_is_in_force():
    cal = {"threshold": 0.31, "confidence": "top1", "k": 10, "temperature": 0.1}
    assert resolve_threshold(SegmentParams(), {"calibration": cal}) == (0.31, SOURCE_RELEASE)
    assert resolve_threshold(SegmentParams(confidence_threshold=0.5), {"calibration": cal}) == (0.5, SOURCE_OVERRIDE)
    assert resolve_threshold(SegmentParams(), {}) == (0.6, SOURCE_PREDATES)
    assert resolve_threshold(SegmentParams(fallback_threshold=0.45), None) == (0.45, SOURCE_PREDATES)
    T, why = resolve_threshold(SegmentParams(k=5), {"calibration": cal})
    assert T == 0.6 and why.startswith("configured (release calibrated for") and "k 5" in why
    T, why = resolve_threshold(SegmentParams(), {"calibration": {**cal, "threshold": None, "skipped": "too few"}})
    assert T == 0.6 and "too few" in why
