"""Fusion arithmetic against hand-computed cases, and retrieval taking part only when close."""
import numpy as np
import pytest

from knnclip_core.segment.fusion import UNKNOWN, clip_scores, fuse
from knnclip_core.segment.retrieval import FlatMemory, retrieve
from knnclip_core.segment.segmenter import SegmentParams


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


def neighbourhood(cosines, d=64):
    """Query e0 and memory rows at exactly the given cosines to it (orthogonal remainders),
    all of class 'cat'."""
    rows = []
    for j, c in enumerate(cosines):
        v = np.zeros(d, np.float32)
        v[0], v[j + 1] = c, np.sqrt(1.0 - c * c)
        rows.append(v)
    xq = np.zeros((1, d), np.float32)
    xq[0, 0] = 1.0
    return xq, FlatMemory(np.stack(rows), np.zeros(len(rows), int), ["cat"])


@pytest.mark.parametrize("seed", range(20))
def test_far_neighbours_never_override_a_confident_base(seed):
    """A unanimous neighbourhood at cosine <= 0.1 (of a class the base model rates low) leaves a
    confident base model's answer alone at the default settings; fails with the old,
    shift-invariant confidence (a unanimous vote has confidence 1 at any distance)."""
    rng = np.random.default_rng(seed)
    p = SegmentParams()
    xq, mem = neighbourhood(rng.uniform(0.0, 0.1, p.k))
    ret = retrieve(mem, xq, p.k, p.temperature, ["cat", "zebra"], confidence_kind=p.confidence)
    base = rng.uniform(0.9, 1.0)
    P_base = np.array([[1.0 - base, base]], np.float32)  # 'zebra' is not in the memory
    _, labels, fused = fuse(ret.P, ret.confidence, P_base, p.fusion_lambda, p.fallback_threshold)
    assert ret.confidence[0] <= 0.1 and not fused[0] and labels[0] == 1


def test_close_neighbours_do_override():
    p = SegmentParams()
    xq, mem = neighbourhood(np.linspace(0.97, 0.93, p.k))
    ret = retrieve(mem, xq, p.k, p.temperature, ["cat", "zebra"], confidence_kind=p.confidence)
    P_base = np.array([[0.02, 0.98]], np.float32)
    P, labels, fused = fuse(ret.P, ret.confidence, P_base, p.fusion_lambda, p.fallback_threshold)
    assert ret.confidence[0] > 0.9 and fused[0] and labels[0] == 0
    lam = p.fusion_lambda
    np.testing.assert_allclose(P[0], lam * np.array([1.0, 0.0]) + (1 - lam) * P_base[0], atol=1e-6)
