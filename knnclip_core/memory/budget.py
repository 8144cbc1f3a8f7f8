"""Memory budget: how many vectors fit, per-class quotas, and the selection strategies.

A strategy takes the eligible rows (vectors, class labels, ids) and a budget and returns
the indices it keeps; the count is EXACTLY `min(budget, rows allowed by the ceiling)`.
Strategies live in `STRATEGIES` (a `knnclip_core.plugins.Registry`):

- `balanced` (default): per-class quotas by water-filling (every class gets the same share,
  classes with fewer rows give their unused share to the others; this also maximises the
  smallest class, so the floor holds whenever budget >= floor * classes), rows inside a
  class picked by a seeded hash of their id (stable when rows are added).
- `diversity`: the same quotas, rows inside a class picked by k-center greedy
  (farthest-point traversal from the row nearest the class mean).
- `random`: seeded baseline: a global random order; the floor of every class is reserved
  first, then rows are taken in order, subject to the ceiling.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Callable, Optional

import faiss
import numpy as np

from ..index.choice import code_size, flat_vectors_within
from ..plugins import Registry

logger = logging.getLogger(__name__)

BYTES_PER_MB = 1_000_000  # --budget-mb counts decimal megabytes


def bytes_per_vector(dim: int) -> int:
    """Bytes one vector takes in the published Flat index (faiss's code size; see
    knnclip_core.index.choice.flat_bytes, the one formula for a Flat index's size)."""
    assert dim > 0
    return code_size(dim, "Flat")


def vectors_for_budget(dim: int, budget_vectors: Optional[int] = None, budget_mb: Optional[float] = None) -> Optional[int]:
    """The vector budget from `budget_vectors` or `budget_mb` (not both); None means no budget.

    Raises ValueError when both are given or one is negative.
    """
    if budget_vectors is not None and budget_mb is not None:
        raise ValueError("give a budget in vectors or in MB, not both")
    if budget_vectors is not None:
        if budget_vectors < 0:
            raise ValueError("the vector budget must be >= 0")
        return int(budget_vectors)
    if budget_mb is not None:
        if budget_mb < 0:
            raise ValueError("the MB budget must be >= 0")
        return flat_vectors_within(int(budget_mb * BYTES_PER_MB), dim)
    return None


def water_fill(counts: np.ndarray, budget: int, ceiling: Optional[int] = None) -> np.ndarray:
    """Per-class quotas summing to min(budget, sum(min(counts, ceiling))).

    The level L is the largest with sum(min(cap, L)) <= budget; the remaining units go one
    each to the classes that can still take one, largest capacity first (ties: lower index).
    """
    cap = np.asarray(counts, np.int64)
    if ceiling is not None:
        cap = np.minimum(cap, int(ceiling))
    budget = int(budget)
    if budget >= cap.sum():
        return cap.copy()
    lo, hi = 0, int(cap.max())
    while lo < hi:  # largest L with sum(min(cap, L)) <= budget
        mid = (lo + hi + 1) // 2
        if np.minimum(cap, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    quota = np.minimum(cap, lo)
    rest = budget - int(quota.sum())
    open_ = np.nonzero(cap > quota)[0]
    open_ = open_[np.lexsort((open_, -cap[open_]))]
    quota[open_[:rest]] += 1
    return quota


def id_hash_order(ids: list[str], seed: int) -> np.ndarray:
    """A seeded order of rows that depends only on each row's id (stable as rows are added)."""
    keys = [hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest() for i in ids]
    return np.array(sorted(range(len(ids)), key=lambda k: (keys[k], ids[k])), dtype=np.int64)


def k_center_order(xc: np.ndarray, k: int) -> np.ndarray:
    """First k rows of a farthest-point traversal of xc (n, D) (L2-normalised), started at
    the row most similar to the mean. Ties go to the lower index. O(k n D)."""
    n = len(xc)
    k = min(k, n)
    if k == 0:
        return np.zeros(0, np.int64)
    mean = xc.mean(axis=0, keepdims=True).astype(np.float32)
    first = int(np.argmax(faiss.pairwise_distances(mean, xc, faiss.METRIC_INNER_PRODUCT)[0]))
    chosen = [first]
    best = faiss.pairwise_distances(xc[first:first + 1], xc, faiss.METRIC_INNER_PRODUCT)[0]  # max sim to chosen
    best[first] = np.inf
    for _ in range(k - 1):
        nxt = int(np.argmin(best))
        chosen.append(nxt)
        np.maximum(best, faiss.pairwise_distances(xc[nxt:nxt + 1], xc, faiss.METRIC_INNER_PRODUCT)[0], out=best)
        best[nxt] = np.inf
    return np.asarray(chosen, np.int64)


Strategy = Callable[..., np.ndarray]
STRATEGIES: Registry[Strategy] = Registry("curation strategy")


def _by_class(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    classes, inv = np.unique(labels, return_inverse=True)
    return classes, [np.nonzero(inv == c)[0] for c in range(len(classes))]


def _quota_select(xb, labels, ids, budget, ceiling, pick: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    _, members = _by_class(labels)
    quota = water_fill(np.array([len(m) for m in members]), budget, ceiling)
    chosen = [m[pick(m, int(q))] for m, q in zip(members, quota) if q > 0]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


@STRATEGIES.register("balanced")
def balanced(xb: np.ndarray, labels: np.ndarray, ids: list[str], budget: int, floor: int = 1,
             ceiling: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Water-filled per-class quotas; rows of a class by seeded id hash. Returns sorted indices."""
    return _quota_select(xb, labels, ids, budget, ceiling,
                         lambda m, q: id_hash_order([ids[i] for i in m], seed)[:q])


@STRATEGIES.register("diversity")
def diversity(xb: np.ndarray, labels: np.ndarray, ids: list[str], budget: int, floor: int = 1,
              ceiling: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Water-filled per-class quotas; rows of a class by k-center greedy. Returns sorted indices."""
    return _quota_select(xb, labels, ids, budget, ceiling,
                         lambda m, q: k_center_order(np.ascontiguousarray(xb[m]), q))


@STRATEGIES.register("random")
def random(xb: np.ndarray, labels: np.ndarray, ids: list[str], budget: int, floor: int = 1,
           ceiling: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Seeded random baseline: floors first, then a global random order under the ceiling."""
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    _, inv = np.unique(labels, return_inverse=True)
    cap = np.bincount(inv, minlength=inv.max() + 1 if n else 0)
    if ceiling is not None:
        cap = np.minimum(cap, ceiling)
    budget = min(int(budget), int(cap.sum()))
    taken = np.zeros(len(cap), np.int64)
    chosen = np.zeros(n, bool)
    count = 0
    for pass_limit in (np.minimum(cap, floor), cap):  # floors first, then fill
        for i in order:
            if count >= budget:
                break
            c = inv[i]
            if not chosen[i] and taken[c] < pass_limit[c]:
                chosen[i] = True
                taken[c] += 1
                count += 1
    return np.nonzero(chosen)[0]


def select(strategy: str, xb: np.ndarray, labels: np.ndarray, ids: list[str], budget: Optional[int],
           floor: int = 1, ceiling: Optional[int] = None, seed: int = 0) -> np.ndarray:
    """Indices kept by `strategy` (all rows allowed by the ceiling when budget is None).

    Raises KeyError for an unknown strategy name.
    """
    fn = STRATEGIES.get(strategy)
    if budget is None:
        budget = len(labels)
    if len(labels) == 0:
        return np.zeros(0, np.int64)
    keep = fn(xb, labels, ids, int(budget), floor=floor, ceiling=ceiling, seed=seed)
    return np.asarray(keep, np.int64)
