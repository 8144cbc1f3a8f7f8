"""Fusion arithmetic against hand-computed cases."""
import numpy as np
import pytest

from knnclip_core.segment.fusion import UNKNOWN, clip_scores, fuse


def test_fuse_with_clip_hand_computed():
    P_ret = np.array([[0.8, 0.2, 0.0], [0.4, 0.3, 0.3]], np.float32)
    conf = P_ret.max(axis=1)
    P_clip = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], np.float32)
    P, labels, fused = fuse(P_ret, conf, P_clip, fusion_lambda=0.75, threshold=0.5)
    # row 0 confident (0.8 >= 0.5): 0.75*[.8,.2,0] + 0.25*[.1,.6,.3] = [.625, .3, .075]
    np.testing.assert_allclose(P[0], [0.625, 0.3, 0.075], atol=1e-6)
    # row 1 not confident (0.4 < 0.5): P_clip unchanged
    np.testing.assert_allclose(P[1], [0.2, 0.2, 0.6], atol=1e-6)
    assert labels.tolist() == [0, 2] and fused.tolist() == [True, False]


def test_fuse_threshold_is_inclusive_and_lambda_extremes():
    P_ret = np.array([[0.5, 0.5, 0.0]], np.float32)
    P_clip = np.array([[0.0, 0.1, 0.9]], np.float32)
    P, labels, fused = fuse(P_ret, np.array([0.5], np.float32), P_clip, 1.0, 0.5)
    np.testing.assert_allclose(P, P_ret)
    assert fused[0]
    P, labels, _ = fuse(P_ret, np.array([0.5], np.float32), P_clip, 0.0, 0.5)
    np.testing.assert_allclose(P, P_clip)
    assert labels[0] == 2


def test_fuse_without_clip_gives_unknown_below_threshold():
    P_ret = np.array([[0.9, 0.1], [0.55, 0.45], [0.0, 0.0]], np.float32)
    P, labels, fused = fuse(P_ret, P_ret.max(axis=1), None, 0.5, 0.6)
    np.testing.assert_allclose(P, P_ret)
    assert labels.tolist() == [0, UNKNOWN, UNKNOWN]
    assert fused.tolist() == [True, False, False]


def test_clip_scores_is_softmax_of_scaled_cosine():
    xq = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    text = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    P = clip_scores(xq, text, logit_scale=10.0)
    # row 0: logits [10, 0]; row 1: [6, 8]
    e0 = np.exp([10.0, 0.0]); e1 = np.exp([6.0, 8.0])
    np.testing.assert_allclose(P[0], e0 / e0.sum(), rtol=1e-5)
    np.testing.assert_allclose(P[1], e1 / e1.sum(), rtol=1e-5)


def test_fuse_rejects_bad_lambda():
    with pytest.raises(AssertionError):
        fuse(np.zeros((1, 2), np.float32), np.zeros(1, np.float32), None, 1.5, 0.5)
