"""Retrieval votes against a brute-force numpy oracle, and vocabulary-restricted retrieval."""
import numpy as np
import pytest

from knnclip_core.index import build_snapshot, load_snapshot
from knnclip_core.segment.retrieval import FlatMemory, retrieve, vote


def unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def oracle(xq, xb, class_ids, vocabulary, classes, k, t, restrict):
    """Brute-force P_ret: exact similarities, take k best (allowed) rows, exp(s/t) per class."""
    cmap = {name: i for i, name in enumerate(classes)}
    P = np.zeros((len(xq), len(classes)))
    for q in range(len(xq)):
        s = xb @ xq[q]
        order = np.argsort(-s, kind="stable")
        if restrict:
            order = [r for r in order if vocabulary[class_ids[r]] in cmap]
        for r in order[:k]:
            c = cmap.get(vocabulary[class_ids[r]])
            if c is not None:
                P[q, c] += np.exp(s[r] / t)
        if P[q].sum():
            P[q] /= P[q].sum()
    return P


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
    r = retrieve(mem, xq, k, t, vocabulary)
    np.testing.assert_allclose(r.P, oracle(xq, xb, class_ids, vocabulary, vocabulary, k, t, False), atol=1e-5)
    np.testing.assert_allclose(r.confidence, r.P.max(axis=1))
    assert (r.I >= 0).all() and r.I.shape == (20, k)


def test_restricted_vocabulary_finds_k_allowed_neighbours(data):
    xb, class_ids, vocabulary, xq = data
    mem = FlatMemory(xb, class_ids, vocabulary)
    asked = ["class 4", "class 1", "new class"]
    r = retrieve(mem, xq, 10, 0.1, asked, restrict=True)
    np.testing.assert_allclose(r.P, oracle(xq, xb, class_ids, vocabulary, asked, 10, 0.1, True), atol=1e-5)
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
