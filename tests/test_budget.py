"""Budgets: exact counts for every strategy, quotas, floors, ceilings, bytes."""
from __future__ import annotations

import numpy as np
import pytest

from knnclip_core.errors import InputError
from knnclip_core.index.choice import flat_bytes
from knnclip_core.memory.budget import (STRATEGIES, bytes_per_vector, k_center_order, select, vectors_for_budget,
                                        water_fill)
from knnclip_core.memory.curate import curate
from knnclip_core.memory.published import load_kept
from knnclip_core.memory.synthetic import clustered_vectors, write_memory

EID = "test|tiny|random-init|mean|l2|dim=16"


def skewed(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(5, n, p=[0.6, 0.2, 0.1, 0.07, 0.03])
    xb = rng.standard_normal((n, 16)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    return xb, np.array([f"c{x}" for x in labels], dtype=object), [f"id{i:04d}" for i in range(n)]


def test_water_fill_oracle():
    counts = np.array([50, 3, 10, 0, 25])
    for budget in range(0, 100):
        q = water_fill(counts, budget)
        assert q.sum() == min(budget, counts.sum()) and np.all(q <= counts)
        # fair: a class below the level is full; levels of unfilled classes differ by at most one
        unfilled = q < counts
        if unfilled.any():
            assert q[unfilled].max() - q[unfilled].min() <= 1
            assert np.all(q[~unfilled] <= q[unfilled].max())
    assert water_fill(counts, 40, ceiling=8).tolist() == [8, 3, 8, 0, 8]


@pytest.mark.parametrize("strategy", ["balanced", "diversity", "random"])
@pytest.mark.parametrize("budget", [0, 1, 4, 17, 100, 299, 300, 1000])
def test_budget_respected_exactly(strategy, budget):
    xb, labels, ids = skewed()
    keep = select(strategy, xb, labels, ids, budget, floor=1, seed=3)
    assert len(keep) == min(budget, len(ids)) and len(set(keep.tolist())) == len(keep)
    assert np.array_equal(keep, select(strategy, xb, labels, ids, budget, floor=1, seed=3))  # deterministic
    if budget >= 5:  # the floor holds when the budget allows it
        assert set(labels[keep]) == set(labels)


@pytest.mark.parametrize("strategy", ["balanced", "diversity", "random"])
def test_ceiling(strategy):
    xb, labels, ids = skewed()
    keep = select(strategy, xb, labels, ids, 200, floor=1, ceiling=20, seed=0)
    counts = {c: int((labels[keep] == c).sum()) for c in set(labels)}
    allowed = sum(min(20, int((labels == c).sum())) for c in set(labels))
    assert len(keep) == min(200, allowed) and max(counts.values()) <= 20


def test_balanced_is_fair():
    xb, labels, ids = skewed()
    keep = select("balanced", xb, labels, ids, 50)
    got = sorted(int((labels[keep] == c).sum()) for c in sorted(set(labels)))
    assert got == sorted(water_fill(np.array([(labels == c).sum() for c in sorted(set(labels))]), 50).tolist())


def test_k_center_is_farthest_point_oracle():
    xb, _, _ = skewed(60)
    order = k_center_order(xb, 10)
    start = int(np.argmax(xb @ xb.mean(0)))
    assert order[0] == start
    for t in range(1, 10):  # each pick is the row farthest (least similar) from those before
        sim = (xb @ xb[order[:t]].T).max(axis=1)
        sim[order[:t]] = np.inf
        assert order[t] == int(np.argmin(sim))


def test_bytes_per_vector_and_mb_budget():
    assert bytes_per_vector(512) == 512 * 4  # faiss's code size of Flat; the header is counted once
    assert vectors_for_budget(512, budget_mb=1.0) == (1_000_000 - flat_bytes(0, 512)) // 2048
    assert vectors_for_budget(16, budget_vectors=7) == 7 and vectors_for_budget(16) is None
    with pytest.raises(ValueError):
        vectors_for_budget(16, 5, 1.0)
    assert set(STRATEGIES.names()) >= {"balanced", "diversity", "random"}


@pytest.mark.parametrize("strategy", ["balanced", "diversity", "random"])
def test_curate_budget_on_table(settings, workspace, strategy):
    xb, labels = clustered_vectors(200, 16, 4, dup_rate=0.1, seed=1)
    write_memory(workspace.memory_dir, EID, xb, labels)
    rep = curate(settings, workspace, EID, budget_vectors=37, strategy=strategy)
    assert rep["counts"]["kept"] == 37
    kept = load_kept(workspace, EID)
    assert len(kept) == 37 and kept.vectors.shape == (37, 16) and kept.lance_tag == rep["lance_tag"]
    mb = flat_bytes(20, 16) / 1e6
    rep = curate(settings, workspace, EID, budget_mb=mb, strategy=strategy)
    assert rep["counts"]["kept"] == 20 and rep["budget"]["kept_bytes"] <= mb * 1e6
    assert sum(d.get("over_budget", 0) for d in rep["dropped"].values()) == rep["counts"]["over_budget"] > 0


def test_curate_refuses_bad_parameters(settings, workspace):
    xb, labels = clustered_vectors(20, 16, 2, seed=1)
    write_memory(workspace.memory_dir, EID, xb, labels)
    with pytest.raises(InputError, match="strategy"):
        curate(settings, workspace, EID, strategy="nope")
    with pytest.raises(InputError, match="not both"):
        curate(settings, workspace, EID, budget_vectors=3, budget_mb=1.0)
