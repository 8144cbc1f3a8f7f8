"""Retrieval votes and confidences against a brute-force numpy oracle, and vocabulary-restricted retrieval."""
import numpy as np
import pytest

from knnclip_core.index import build_snapshot, load_snapshot
from knnclip_core.segment.retrieval import FlatMemory, confidence, retrieve, vote


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def oracle(xq, xb, class_ids, vocabulary, classes, k, t, restrict, with_confidence=False):
    """Brute-force P_ret: exact similarities, take k best (allowed) rows, exp(s/t) per class;
    with_confidence also the similarity confidence: sum over the winner's neighbours of
    exp(s/t) * max(s, 0), over the sum of exp(s/t) of all that voted."""
    cmap = {name: i for i, name in enumerate(classes)}
    P = np.zeros((len(xq), len(classes)))
    conf = np.zeros(len(xq))
    for q in range(len(xq)):
        s = xb @ xq[q]
        order = np.argsort(-s, kind="stable")
        if restrict:
            order = [r for r in order if vocabulary[class_ids[r]] in cmap]
        voted = [(cmap[vocabulary[class_ids[r]]], s[r]) for r in order[:k] if vocabulary[class_ids[r]] in cmap]
        for c, sim in voted:
            P[q, c] += np.exp(sim / t)
        if P[q].sum():
            conf[q] = sum(np.exp(sim / t) * max(sim, 0) for c, sim in voted if c == P[q].argmax()) / P[q].sum()
            P[q] /= P[q].sum()
    return (P, conf) if with_confidence else P


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    xb = unit(rng, 300, 16)
    class_ids = rng.integers(0, 6, 300)
    vocabulary = [f"class {i}" for i in range(6)]
    xq = unit(rng, 20, 16)
    return xb, class_ids, vocabulary, xq


@pytest.mark.parametrize("k,t", [(1, 0.1), (5, 0.1), (10, 0.05), (10, 1.0)])
def test_vote_matches_oracle(data, k, t):
    xb, class_ids, vocabulary, xq = data
    mem = FlatMemory(xb, class_ids, vocabulary)
    r = retrieve(mem, xq, k, t, vocabulary, confidence_kind="similarity")
    P, conf = oracle(xq, xb, class_ids, vocabulary, vocabulary, k, t, False, with_confidence=True)
    np.testing.assert_allclose(r.P, P, atol=1e-5)
    np.testing.assert_allclose(r.confidence, conf, atol=1e-5)
    assert (r.I >= 0).all() and r.I.shape == (20, k)
    share = retrieve(mem, xq, k, t, vocabulary, confidence_kind="vote_share")
    np.testing.assert_allclose(share.confidence, P.max(axis=1), atol=1e-5)
    np.testing.assert_allclose(share.P, r.P)


def test_similarity_confidence_measures_closeness_and_vote_share_does_not():
    labels = np.array([[0, 0, 0, 1]])
    near = np.array([[0.95, 0.94, 0.93, 0.90]], np.float32)
    far = near - 0.85  # every similarity shifted by a constant: same vote, far neighbours
    for D in (near, far):
        P, share = vote(D, labels, 2, 0.1)
        np.testing.assert_allclose(confidence(P, D, labels, 0.1, "vote_share"), share)
    P_near, share_near = vote(near, labels, 2, 0.1)
    P_far, share_far = vote(far, labels, 2, 0.1)
    np.testing.assert_allclose(P_near, P_far, atol=1e-6)
    np.testing.assert_allclose(share_near, share_far, atol=1e-6)  # the old confidence cannot tell them apart
    c_near, c_far = confidence(P_near, near, labels, 0.1, "similarity")[0], confidence(P_far, far, labels, 0.1, "similarity")[0]
    w = np.exp(near[0] / 0.1)
    assert c_near == pytest.approx((w[:3] * near[0, :3]).sum() / w.sum(), rel=1e-5)
    assert c_far == pytest.approx((w[:3] * far[0, :3]).sum() / w.sum(), rel=1e-5)
    assert c_far < 0.1 < 0.7 < c_near
    # unanimous neighbours: the confidence is their weighted mean cosine; negative ones count 0
    D = np.array([[0.5, 0.5], [-0.3, -0.4]], np.float32)
    P, _ = vote(D, np.zeros((2, 2), int), 1, 0.1)
    np.testing.assert_allclose(confidence(P, D, np.zeros((2, 2), int), 0.1, "similarity"), [0.5, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="vote_share"):
        confidence(P, D, np.zeros((2, 2), int), 0.1, "nearest")


def test_restricted_vocabulary_finds_k_allowed_neighbours(data):
    xb, class_ids, vocabulary, xq = data
    mem = FlatMemory(xb, class_ids, vocabulary)
    asked = ["class 4", "class 1", "new class"]
    r = retrieve(mem, xq, 10, 0.1, asked, restrict=True, confidence_kind="similarity")
    P, conf = oracle(xq, xb, class_ids, vocabulary, asked, 10, 0.1, True, with_confidence=True)
    np.testing.assert_allclose(r.P, P, atol=1e-5)
    np.testing.assert_allclose(r.confidence, conf, atol=1e-5)
    assert (r.I >= 0).all(), "k allowed neighbours must be found"
    assert set(np.array(vocabulary)[class_ids[r.I.ravel()]]) <= {"class 4", "class 1"}
    assert (r.P[:, 2] == 0).all()


def test_restricted_to_rare_class_searches_the_whole_memory():
    rng = np.random.default_rng(1)
    xb = unit(rng, 200, 8)
    class_ids = np.zeros(200, int)
    class_ids[[7, 150, 199]] = 1
    mem = FlatMemory(xb, class_ids, ["common", "rare"])
    r = retrieve(mem, unit(rng, 3, 8), 5, 0.1, ["rare"], restrict=True)
    assert sorted(set(r.I[r.I >= 0].tolist())) == [7, 150, 199]
    assert (r.I[:, 3:] == -1).all()
    np.testing.assert_allclose(r.P[:, 0], 1.0)


def test_vote_ignores_missing_neighbours():
    D = np.array([[0.9, 0.8, 0.1]], np.float32)
    labels = np.array([[0, -1, 1]])
    P, conf = vote(D, labels, 2, 0.1)
    w = np.exp(np.array([0.9, 0.1]) / 0.1)
    np.testing.assert_allclose(P[0], w / w.sum(), rtol=1e-5)
    P, conf = vote(D, np.full((1, 3), -1), 2, 0.1)
    assert (P == 0).all() and conf[0] == 0


def test_snapshot_memory_matches_oracle(tmp_path, data):
    xb, class_ids, vocabulary, xq = data
    names = [vocabulary[c] for c in class_ids]
    build_snapshot(tmp_path / "snap", xb, [f"s{i}" for i in range(len(xb))], names, "test|emb", factory="Flat")
    snap = load_snapshot(tmp_path / "snap")
    r = retrieve(snap, xq, 5, 0.1, snap.vocabulary)
    exp = oracle(xq, xb, np.array([snap.vocabulary.index(n) for n in names]), snap.vocabulary, snap.vocabulary,
                 5, 0.1, False)
    np.testing.assert_allclose(r.P, exp, atol=1e-5)


def test_top1_and_mean_cosine_confidences_against_numpy():
    """top1 = cosine of the nearest neighbour that counts, mean_cosine = mean cosine of the k
    (both clipped at 0), whatever the vote says; brute force over a seeded memory."""
    from knnclip_core.segment.retrieval import FlatMemory, retrieve

    rng = np.random.default_rng(4)
    xb = rng.normal(size=(120, 12)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    labels = rng.integers(0, 3, 120)
    xq = xb[:20] + 0.5 * rng.normal(size=(20, 12)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    mem = FlatMemory(xb, labels, ["a", "b", "c"])
    sims = np.sort(xq @ xb.T, axis=1)[:, ::-1][:, :7]
    top1 = retrieve(mem, xq, 7, 0.1, ["a", "b", "c"], confidence_kind="top1").confidence
    mean = retrieve(mem, xq, 7, 0.1, ["a", "b", "c"], confidence_kind="mean_cosine").confidence
    np.testing.assert_allclose(top1, np.maximum(sims[:, 0], 0), atol=1e-5)
    np.testing.assert_allclose(mean, np.maximum(sims, 0).mean(axis=1), atol=1e-5)
