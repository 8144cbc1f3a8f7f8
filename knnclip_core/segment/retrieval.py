"""P_ret: class scores from the k nearest neighbours in the release memory.

The memory is anything with `.search(xq, k) -> (D, I)` (inner product on L2-normalised
vectors), `.class_ids` (int per row, index into `.vocabulary`) and `.vocabulary`
(a `Snapshot`, or `FlatMemory` below). Scores are a similarity-weighted,
temperature-softmax vote: each neighbour j of class c adds exp(s_j / t) to class c,
then the vote is normalised to sum to 1 (P_ret does not change when every similarity
shifts by a constant; it says which class, not how close).

The confidence says whether retrieval may take part (fusion.fuse compares it with T):

- `similarity` (default): the winning class's share of the vote times the weighted mean
  cosine of its neighbours, `conf = sum_{j in c*} w_j max(s_j, 0) / sum_j w_j` with
  `w_j = exp(s_j / t)`. A unanimous neighbourhood at cosine 0.95 gives 0.95, one at 0.10
  gives 0.10, a 50/50 split at 0.95 gives 0.475. It is in cosine units, so T depends on
  the memory backbone's feature space (benchmarks/open_set.py measures it).
- `vote_share`: the winning class's share of the vote, the top of P_ret (the old
  confidence; shift-invariant: neighbours at cosine 0.10 give the same as at 0.95).
- `top1`: the cosine of the nearest neighbour that counts (clipped at 0), whatever its class.
- `mean_cosine`: the mean cosine (clipped at 0) of the k neighbours that count.

benchmarks/open_set.py compares the four on a held-out split.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

logger = logging.getLogger(__name__)

CONFIDENCES = ("similarity", "vote_share", "top1", "mean_cosine")  # retrieval confidence formulas (module docstring)
DEFAULT_CONFIDENCE = "top1"  # best on the held-out split of benchmarks/open_set.py (classic-v2, CamVid)


class Memory(Protocol):
    class_ids: np.ndarray
    vocabulary: list

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class FlatMemory:
    """A brute-force FAISS memory (IndexFlatIP) with class labels; handy for tests and benchmarks.

    `xb` (n, d) float32 L2-normalised, `class_ids` (n,) ints into `vocabulary`."""

    def __init__(self, xb: np.ndarray, class_ids: np.ndarray, vocabulary: Sequence[str],
                 segment_ids: Optional[Sequence[str]] = None):
        import faiss

        xb = np.ascontiguousarray(xb, dtype=np.float32)
        assert xb.ndim == 2 and len(class_ids) == len(xb)
        self.index = faiss.IndexFlatIP(xb.shape[1])
        self.index.add(xb)
        self.class_ids = np.asarray(class_ids, dtype=np.int64)
        self.vocabulary = list(vocabulary)
        self.segment_ids = list(segment_ids) if segment_ids is not None else [str(i) for i in range(len(xb))]

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of the k best inner products; I is -1 where fewer than k rows exist."""
        return self.index.search(np.ascontiguousarray(xq, dtype=np.float32), k)


@dataclass
class Retrieval:
    """Result of `retrieve` for nq queries over C output classes."""

    P: np.ndarray            # (nq, C) vote scores, rows sum to 1 (or 0 when no neighbour counted)
    confidence: np.ndarray   # (nq,) retrieval confidence (see CONFIDENCES)
    D: np.ndarray            # (nq, k) similarities of the neighbours that voted (-inf when missing)
    I: np.ndarray            # (nq, k) memory rows that voted (-1 when missing)


def class_map(memory_vocabulary: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Index of each memory class in `classes`, -1 for classes not asked for."""
    where = {name: i for i, name in enumerate(classes)}
    return np.array([where.get(name, -1) for name in memory_vocabulary], dtype=np.int64)


def _weights(D: np.ndarray, valid: np.ndarray, temperature: float) -> np.ndarray:
    """(nq, k) float64 exp((s - row max) / t) of the valid neighbours, 0 elsewhere."""
    logits = np.where(valid, D.astype(np.float64) / temperature, -np.inf)
    top = logits.max(axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    return np.where(valid, np.exp(logits - top), 0.0)


def vote(D: np.ndarray, labels: np.ndarray, n_classes: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Similarity-weighted temperature-softmax vote.

    D (nq, k) similarities, labels (nq, k) class index per neighbour (-1 = does not count),
    returns (P (nq, n_classes) with rows summing to 1 or all 0, vote share (nq,) = row max)."""
    assert D.shape == labels.shape and temperature > 0
    nq = D.shape[0]
    P = np.zeros((nq, n_classes), dtype=np.float64)
    valid = labels >= 0
    if valid.any():
        w = _weights(D, valid, temperature)
        rows = np.broadcast_to(np.arange(nq)[:, None], labels.shape)
        np.add.at(P, (rows[valid], labels[valid]), w[valid])
        total = P.sum(axis=1, keepdims=True)
        P = np.divide(P, total, out=np.zeros_like(P), where=total > 0)
    P = P.astype(np.float32)
    return P, (P.max(axis=1) if n_classes else np.zeros(nq, dtype=np.float32))


def confidence(P: np.ndarray, D: np.ndarray, labels: np.ndarray, temperature: float,
               kind: str = DEFAULT_CONFIDENCE) -> np.ndarray:
    """(nq,) float32 retrieval confidence of a vote (formulas in the module docstring).

    P (nq, C) from `vote`, D and labels (nq, k) and `temperature` as given to it.
    Raises ValueError for a kind not in CONFIDENCES."""
    if kind not in CONFIDENCES:
        raise ValueError(f"unknown retrieval confidence {kind!r}; use one of {', '.join(CONFIDENCES)}")
    nq = P.shape[0]
    if P.shape[1] == 0 or nq == 0:
        return np.zeros(nq, dtype=np.float32)
    if kind == "vote_share":
        return P.max(axis=1).astype(np.float32)
    valid = labels >= 0
    if kind in ("top1", "mean_cosine"):
        s = np.where(valid, np.maximum(D.astype(np.float64), 0.0), 0.0)
        if kind == "top1":
            return s.max(axis=1).astype(np.float32)
        n = valid.sum(axis=1)
        return np.divide(s.sum(axis=1), n, out=np.zeros(nq), where=n > 0).astype(np.float32)
    w = _weights(D, valid, temperature)
    mine = valid & (labels == P.argmax(axis=1)[:, None])
    num = (np.where(mine, w * np.maximum(D.astype(np.float64), 0.0), 0.0)).sum(axis=1)
    tot = w.sum(axis=1)
    return np.divide(num, tot, out=np.zeros(nq), where=tot > 0).astype(np.float32)


def search_allowed(memory: Memory, xq: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of each query among rows whose class is allowed.

    `allowed` (n_memory_classes,) bool. Searches deeper (doubling) until k allowed rows are
    found per query or the whole memory was searched. Returns (D, I) (nq, k), -inf / -1 padded."""
    assert xq.ndim == 2 and k >= 1
    class_ids = np.asarray(memory.class_ids)
    ntotal = len(class_ids)
    nq = len(xq)
    D_out = np.full((nq, k), -np.inf, dtype=np.float32)
    I_out = np.full((nq, k), -1, dtype=np.int64)
    if ntotal == 0 or nq == 0 or not allowed.any():
        return D_out, I_out
    row_ok = allowed[class_ids]
    share = max(row_ok.mean(), 1.0 / ntotal)
    depth = min(ntotal, max(k, int(np.ceil(k / share * 1.5))))
    todo = np.arange(nq)
    while len(todo):
        D, I = memory.search(xq[todo], depth)
        ok = (I >= 0) & row_ok[np.maximum(I, 0)]
        found = ok.sum(axis=1)
        done = (found >= k) | (depth >= ntotal)
        for qi in np.nonzero(done)[0]:
            sel = np.nonzero(ok[qi])[0][:k]
            D_out[todo[qi], :len(sel)] = D[qi, sel]
            I_out[todo[qi], :len(sel)] = I[qi, sel]
        todo = todo[~done]
        depth = min(ntotal, depth * 4)
    return D_out, I_out


def retrieve(memory: Memory, xq: np.ndarray, k: int, temperature: float, classes: Sequence[str],
             restrict: bool = False, confidence_kind: str = DEFAULT_CONFIDENCE) -> Retrieval:
    """P_ret over `classes` for queries `xq` (nq, d) float32 L2-normalised, with the
    `confidence_kind` confidence (see CONFIDENCES).

    With `restrict` only neighbours whose class is in `classes` count and the search goes deep
    enough to find k of them; without it the plain k nearest neighbours vote and those of
    classes outside `classes` are simply dropped from the vote."""
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    assert xq.ndim == 2 and k >= 1
    cmap = class_map(memory.vocabulary, classes)
    if restrict:
        D, I = search_allowed(memory, xq, k, cmap >= 0)
    elif len(xq):
        D, I = memory.search(xq, k)
    else:
        D, I = np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    class_ids = np.asarray(memory.class_ids)
    labels = np.where(I >= 0, cmap[class_ids[np.maximum(I, 0)]], -1)
    P, _ = vote(D, labels, len(classes), temperature)
    conf = confidence(P, D, labels, temperature, confidence_kind)
    D = np.where(labels >= 0, D, -np.inf).astype(np.float32)
    I = np.where(labels >= 0, I, -1)
    return Retrieval(P=P, confidence=conf, D=D, I=I)
