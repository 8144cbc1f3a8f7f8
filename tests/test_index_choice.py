"""Index choice by size and byte budget, build + recall measurement against a numpy oracle."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from knnclip_core.errors import KnnclipError
from knnclip_core.index import RecallFloorError, build_index, choose_index, estimate_bytes, flat_bytes, recall_at_k
from knnclip_core.index.choice import nlist_for


def clustered(n: int, d: int, centres: int = 20, spread: float = 0.15, seed: int = 0) -> np.ndarray:
    """Seeded L2-normalised vectors around `centres` random centres."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    xb = c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d)).astype(np.float32)
    return xb / np.linalg.norm(xb, axis=1, keepdims=True)


def oracle_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product k-NN in numpy."""
    S = xq @ xb.T
    I = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, I, axis=1), I


@pytest.mark.parametrize("n, budget_frac, kind", [
    (5_000, None, "flat"), (200_000, None, "hnsw"), (1_000_000, None, "ivf_flat"),
    (1_000_000, 1.0, "flat"), (1_000_000, 1 / 3, "ivf_sq8"), (1_000_000, 1 / 5, "ivf_sq6"),
    (1_000_000, 1 / 16, "ivf_pq_d8"),
])
def test_choice_by_size_and_budget(n, budget_frac, kind):
    budget = None if budget_frac is None else int(flat_bytes(n, 512) * budget_frac)
    choice = choose_index(n, 512, byte_budget=budget)
    assert choice.kind == kind, choice
    if budget is not None:
        assert choice.estimated_bytes <= budget


def test_choice_override_and_impossible_budget():
    assert choose_index(10, 8, factory="IVF4,SQ8").factory == "IVF4,SQ8"
    assert choose_index(10, 8, factory="IVF4,SQ8").nlist == 4
    with pytest.raises(ValueError, match="no index kind fits"):
        choose_index(100_000, 512, byte_budget=1000)


def test_nlist_has_enough_training_points():
    for n in (700, 5_000, 50_000, 1_000_000):
        nl = nlist_for(n)
        assert nl * 39 <= n and nl & (nl - 1) == 0
    assert nlist_for(1_000_000) == 4096


def test_flat_build_matches_numpy_oracle():
    xb = clustered(2_000, 32)
    built = build_index(xb, choose_index(len(xb), 32))
    assert built.factory == "Flat" and built.recall_at_10 == pytest.approx(1.0)
    xq = clustered(50, 32, seed=1)
    D, I = built.index.search(xq, 5)
    Do, Io = oracle_knn(xq, xb, 5)
    np.testing.assert_allclose(D, Do, atol=1e-5)
    assert (I == Io).mean() > 0.99  # ties aside


def test_ivf_recall_measure_agrees_with_oracle():
    xb = clustered(8_000, 32, centres=40)
    built = build_index(xb, choose_index(len(xb), 32, factory="IVF64,SQ8"), recall_floor=0.9)
    assert built.search_params["nprobe"] >= 1 and built.recall_at_10 >= 0.9
    # recompute recall for the tuned index on fresh queries with the numpy oracle
    xq = clustered(200, 32, centres=40, seed=3)
    _, I = built.index.search(xq, 10)
    _, Io = oracle_knn(xq, xb, 10)
    r = recall_at_k(I, Io, 10)
    assert r >= 0.85
    manual = np.mean([len(set(I[q]) & set(Io[q])) / 10 for q in range(len(xq))])
    assert r == pytest.approx(manual)


def test_recall_floor_refuses_with_reason():
    xb = clustered(5_000, 32, centres=10, spread=0.3)
    with pytest.raises(RecallFloorError, match=r"recall@10 .* below the floor 0.990"):
        build_index(xb, choose_index(len(xb), 32, factory="IVF32,PQ2"), recall_floor=0.99)


def test_bad_factory_is_a_user_error():
    with pytest.raises(KnnclipError, match="factory"):
        build_index(clustered(100, 8), choose_index(100, 8, factory="NoSuchIndex"))


def test_estimated_bytes_close_to_serialised():
    n, d = 20_000, 64
    xb = clustered(n, d)
    for kind, factory in (("ivf_sq8", f"IVF{nlist_for(n)},SQ8"), ("flat", "Flat")):
        built = build_index(xb, choose_index(n, d, factory=factory), recall_floor=0.0)
        actual = faiss.serialize_index(built.index).nbytes
        assert abs(actual - estimate_bytes(kind, n, d)) / actual < 0.15, (kind, actual)


def test_ivf_takes_fewer_lists_before_a_coarser_code():
    """SQ6 over 200k x 512 misses 1/5 of Flat's bytes by its 2048 centroids alone: the choice
    keeps SQ6 with fewer lists rather than dropping to SQ4."""
    from knnclip_core.index.choice import choose_index, estimate_bytes, flat_bytes, nlist_for

    n, d = 200_000, 512
    budget = flat_bytes(n, d) // 5
    assert estimate_bytes("ivf_sq6", n, d) > budget
    choice = choose_index(n, d, byte_budget=budget)
    assert choice.kind == "ivf_sq6" and choice.nlist < nlist_for(n)
    assert choice.factory == f"IVF{choice.nlist},SQ6" and choice.estimated_bytes <= budget


def test_a_newly_registered_kind_takes_its_declared_place(monkeypatch):
    from knnclip_core.index.choice import INDEX_KINDS, IndexKind, budget_order, pq_m_for

    n, d = 1_000_000, 512
    tiny_budget = int(3.5 * n) + nlist_for(n) * d * 4  # below d/16 PQ codes: no default kind fits
    with pytest.raises(ValueError, match="no index kind fits"):
        choose_index(n, d, byte_budget=tiny_budget)
    monkeypatch.setattr(INDEX_KINDS, "_items", dict(INDEX_KINDS._items))  # registered for this test only
    INDEX_KINDS.add("ivf_pq_2", IndexKind("ivf_pq_2", lambda n, d: f"IVF{nlist_for(n)},PQ2", lambda d: 2.0,
                                          ivf=True, budget_rank=99))
    assert budget_order()[-1] == "ivf_pq_2"
    choice = choose_index(n, d, byte_budget=tiny_budget)
    assert choice.kind == "ivf_pq_2" and choice.factory.endswith(",PQ2")
    assert pq_m_for(d, d // 16) == 32  # the smallest default code, which did not fit
