"""Near-duplicate pairs (cosine >= threshold) among L2-normalised vectors, and duplicate groups.

Two searches, both returning every pair once as `(S, P)`: `S` (m,) float32 cosine
similarities, `P` (m, 2) int64 row indices with `P[:, 0] < P[:, 1]`, sorted by row.

- `exact_pairs`: blocked exact search (faiss IndexFlatIP range_search over query blocks);
  O(n^2 D) flops but never an n x n matrix in memory. The reference, and the choice for
  small memories.
- `ivf_pairs`: partition with faiss k-means into `nlist` lists, send every vector to its
  `nprobe` nearest lists, and compare exactly (BLAS) the vectors probing a list with the
  members of that list. A pair is found when either vector probes the other's list, so
  recall of near-duplicates (which sit close together) is very high; cost is about
  `nprobe * n^2 / nlist * D` flops.

`near_duplicate_pairs` picks one of them by size.
"""
from __future__ import annotations

import logging

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .dedup_stream import ArraySource, canonical_pairs, ivf_pairs_source

logger = logging.getLogger(__name__)

EXACT_BELOW = 20_000  # `near_duplicate_pairs` searches exactly up to this many vectors


def exact_pairs(xb: np.ndarray, threshold: float, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """All pairs with inner product >= threshold, exactly, by blocked faiss range search.

    xb: (n, D) float32, L2-normalised. Returns (S, P) as described in the module docstring.
    """
    assert xb.ndim == 2 and xb.dtype == np.float32, (xb.shape, xb.dtype)
    n, d = xb.shape
    if n < 2:
        return np.zeros(0, np.float32), np.zeros((0, 2), np.int64)
    radius = float(threshold) - 1e-6  # faiss keeps IP > radius; we filter >= threshold below
    index = faiss.IndexFlatIP(d)
    index.add(xb)
    ii, jj, ss = [], [], []
    for i0 in range(0, n, block):
        lims, D, I = index.range_search(xb[i0:i0 + block], radius)
        q = np.repeat(np.arange(i0, i0 + len(lims) - 1), np.diff(lims).astype(np.int64))
        I = I.astype(np.int64)
        keep = (I > q) & (D >= threshold)
        ii.append(q[keep]), jj.append(I[keep]), ss.append(D[keep])
    return canonical_pairs(np.concatenate(ii), np.concatenate(jj), np.concatenate(ss), n)


def ivf_pairs(xb: np.ndarray, threshold: float, nlist: int | None = None, nprobe: int = 4,
              seed: int = 0, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with inner product >= threshold through an IVF partition (approximate, high recall).

    xb: (n, D) float32, L2-normalised; nlist: k-means lists (default ~ 2 sqrt(n), at most
    4096); nprobe: lists each vector is compared with. Deterministic for a given `seed`.
    Returns (S, P) as described in the module docstring. The search itself is
    `dedup_stream.ivf_pairs_source`, which also runs over vectors on disk.
    """

    out = ivf_pairs_source(ArraySource(xb), threshold, nlist=nlist, nprobe=nprobe, seed=seed, block=block)
    return exact_pairs(xb, threshold) if out is None else out


def near_duplicate_pairs(xb: np.ndarray, threshold: float, method: str = "auto", nprobe: int = 4,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with cosine >= threshold: `exact` search, `ivf` search, or `auto` (exact below
    EXACT_BELOW vectors). Raises ValueError for another method. Returns (S, P)."""
    if method == "auto":
        method = "exact" if len(xb) <= EXACT_BELOW else "ivf"
    if method == "exact":
        return exact_pairs(xb, threshold)
    if method == "ivf":
        return ivf_pairs(xb, threshold, nprobe=nprobe, seed=seed)
    raise ValueError(f"unknown dedup method {method!r} (auto, exact, ivf)")


def duplicate_groups(n: int, P: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Keeper of each row's duplicate group (connected components of the pair graph).

    n: rows; P: (m, 2) pairs; rank: (n,) order of preference, lower is kept (e.g. the
    position by (ingested_at, id)). Returns keeper (n,) int64: the row index of the
    lowest-rank member of its group (itself for singletons and keepers).
    """
    assert rank.shape == (n,)
    if len(P) == 0:
        return np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(P), np.int8), (P[:, 0], P[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    best = np.full(comp.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, comp, rank.astype(np.int64))
    by_rank = np.empty(n, np.int64)
    by_rank[rank] = np.arange(n)
    return by_rank[best[comp]]
