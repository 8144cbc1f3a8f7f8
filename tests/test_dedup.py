"""Near-duplicate search and grouping against a brute-force numpy oracle."""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from knnclip_core.memory.dedup import duplicate_groups, exact_pairs, ivf_pairs, near_duplicate_pairs
from knnclip_core.memory.plan import CurationParams, Rule, plan_curation
from knnclip_core.memory.synthetic import clustered_vectors, write_memory
from knnclip_core.memory.table import CONFLICT, DUPLICATE, KEPT, MemoryTable

EID = "test|tiny|random-init|mean|l2|dim=16"


def oracle_pairs(xb: np.ndarray, t: float) -> set[tuple[int, int]]:
    S = xb.astype(np.float64) @ xb.astype(np.float64).T
    i, j = np.nonzero(np.triu(S >= t, k=1))
    return set(zip(i.tolist(), j.tolist()))


def oracle_keepers(n: int, pairs, rank) -> list[int]:
    """Union-find in plain Python: keeper of each row = lowest-rank member of its component."""
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    best = {}
    for i in range(n):
        r = find(i)
        if r not in best or rank[i] < rank[best[r]]:
            best[r] = i
    return [best[find(i)] for i in range(n)]


def as_set(P: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, P.tolist()))


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_and_ivf_pairs_match_oracle(seed):
    xb, _ = clustered_vectors(600, 16, 5, seed=seed)
    want = oracle_pairs(xb, 0.98)
    assert len(want) > 50
    S, P = exact_pairs(xb, 0.98, block=128)
    assert as_set(P) == want
    assert np.all(P[:, 0] < P[:, 1]) and np.all(S >= 0.98)
    S2, P2 = ivf_pairs(xb, 0.98, nlist=8, nprobe=3, seed=seed)
    got = as_set(P2)
    assert got <= want  # exact similarities: never a false pair
    assert len(got) / len(want) >= 0.99
    np.testing.assert_allclose(S2, [float(xb[a] @ xb[b]) for a, b in P2.tolist()], rtol=0, atol=1e-5)


def test_near_duplicate_pairs_methods_and_small_inputs():
    xb, _ = clustered_vectors(200, 8, 3, seed=2)
    assert as_set(near_duplicate_pairs(xb, 0.98, "auto")[1]) == oracle_pairs(xb, 0.98)
    assert len(exact_pairs(xb[:1], 0.5)[1]) == 0
    with pytest.raises(ValueError):
        near_duplicate_pairs(xb, 0.98, "magic")


def test_duplicate_groups_match_union_find_oracle():
    rng = np.random.default_rng(0)
    n = 300
    pairs = rng.integers(0, n, (200, 2))
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    rank = rng.permutation(n)
    keeper = duplicate_groups(n, pairs, rank)
    assert keeper.tolist() == oracle_keepers(n, pairs.tolist(), rank)


def test_plan_states_match_oracle(workspace):
    """Curation plan on a real LanceDB table: conflicts, then duplicates keep the earliest ingested."""
    xb, labels = clustered_vectors(400, 16, 4, dup_rate=0.25, conflict_rate=0.2, seed=3)
    ids = write_memory(workspace.memory_dir, EID, xb, labels)
    rows = MemoryTable.open(workspace.memory_dir, EID).table.to_arrow()
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("id", "ascending")]))
    assert rows.column("id").to_pylist() == ids  # ids sort like ingest order here
    plan = plan_curation(rows, [], CurationParams(dedup_threshold=0.98))

    pairs = oracle_pairs(xb, 0.98)
    conflict = {x for a, b in pairs if labels[a] != labels[b] for x in (a, b)}
    same = [(a, b) for a, b in pairs if labels[a] == labels[b] and a not in conflict and b not in conflict]
    keeper = oracle_keepers(len(xb), same, np.arange(len(xb)))  # rank = ingest order
    want = [CONFLICT if i in conflict else DUPLICATE if keeper[i] != i else KEPT for i in range(len(xb))]
    assert conflict and any(s == DUPLICATE for s in want)
    assert plan.states.tolist() == want
    for i in range(len(xb)):
        if want[i] == DUPLICATE:
            assert plan.reasons[i] == f"duplicate_of:{ids[keeper[i]]}"
        if want[i] == CONFLICT:
            other = plan.reasons[i].split(":")[1].split("(")[0]
            j = ids.index(other)
            assert labels[j] != labels[i] and (min(i, j), max(i, j)) in pairs
    assert plan.report["counts"][CONFLICT] == len(conflict)


def test_forget_rules_applied_before_dedup(workspace):
    xb, labels = clustered_vectors(100, 8, 2, seed=4)
    datasets = ["a" if i % 2 else "b" for i in range(100)]
    write_memory(workspace.memory_dir, EID, xb, labels, datasets=datasets)
    rows = MemoryTable.open(workspace.memory_dir, EID).table.to_arrow()
    plan = plan_curation(rows, [Rule(7, "dataset", "a")], CurationParams())
    ds = rows.column("dataset").to_pylist()
    assert [s == "forgotten" for s in plan.states] == [d == "a" for d in ds]
    assert all(r == "forget_rule:7(dataset=a)" for r, d in zip(plan.reasons, ds) if d == "a")


def test_streamed_search_from_lancedb_matches_in_memory_and_oracle(workspace, tmp_path):
    """Vectors streamed out of a LanceDB memory table to disk, compared in small groups of
    lists (max_rows forces many reads): the pairs of the in-memory search, all real."""
    from knnclip_core.memory.dedup_stream import ArraySource, ivf_pairs_source, spill_lance

    xb, labels = clustered_vectors(900, 16, 6, seed=3)
    write_memory(workspace.memory_uri, EID, xb, labels)
    table = MemoryTable.open(workspace.memory_uri, EID, 16).table
    src = spill_lance(table, tmp_path / "vectors.f32", batch_rows=128, window_rows=64)
    assert (src.n, src.d) == (900, 16)
    order = np.argsort(table.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist())
    np.testing.assert_allclose(src.take(np.arange(900))[order], xb / np.linalg.norm(xb, axis=1, keepdims=True), atol=1e-6)
    want = oracle_pairs(src.take(np.arange(900)), 0.98)
    S, P = ivf_pairs_source(src, 0.98, nlist=12, nprobe=3, seed=0, max_rows=150, batch_rows=100)
    S_mem, P_mem = ivf_pairs_source(ArraySource(src.take(np.arange(900))), 0.98, nlist=12, nprobe=3, seed=0)
    assert as_set(P) == as_set(P_mem)
    np.testing.assert_array_equal(S, S_mem)
    assert as_set(P) <= want and len(as_set(P)) / len(want) >= 0.99 and len(want) > 50
