"""Proposals regrouped by what retrieval says: touching proposals given one class become one.

Over-segmenting generators (SLIC) cut an object into fragments that look little like the
whole-object segments a memory holds. `agreeing_groups` joins touching proposals whose
retrieval answers the same class; the Segmenter then classifies each joined region again
(`SegmentParams.merge_rounds` rounds), so the query looks like the memory's rows and a stray
fragment is outvoted by the region it belongs to.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from .panoptic import _groups, touching_pairs

logger = logging.getLogger(__name__)

SCOPES = ("touching", "class")


def agreeing_groups(masks: Sequence[np.ndarray], classes: Sequence[int], scope: str = "touching") -> list[list[int]]:
    """Groups (lists of proposal indices, in index order, groups ordered by their first member)
    of proposals that share a class >= 0 and, with scope 'touching', are joined by touching
    (4-neighbourhood) ones; with scope 'class' every proposal of a class is one group (one region
    per class and image, like a semantic memory's rows). A proposal with class < 0 stays alone.
    The masks need not be disjoint (later ones win where they overlap)."""
    assert scope in SCOPES, scope
    n = len(masks)
    if not n:
        return []
    classes = np.asarray(classes, dtype=np.int64)
    if scope == "class":
        out_c: dict = {}
        for i in range(n):
            out_c.setdefault(int(classes[i]) if classes[i] >= 0 else ("alone", i), []).append(i)
        return sorted(out_c.values(), key=lambda g: g[0])
    owner = np.full(masks[0].shape, -1, dtype=np.int32)
    for i, m in enumerate(masks):
        owner[m] = i
    pairs = touching_pairs(owner)
    if len(pairs):
        pairs = pairs[(classes[pairs[:, 0]] == classes[pairs[:, 1]]) & (classes[pairs[:, 0]] >= 0)]
    root = _groups(n, pairs)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(int(root[i]), []).append(i)
    return sorted(out.values(), key=lambda g: g[0])


def smoothed_classes(masks: Sequence[np.ndarray], P: np.ndarray, weight: float) -> np.ndarray:
    """Class of each proposal from its scores plus `weight` x the mean of its touching
    neighbours' scores (weighted by the length of the shared border); -1 where all are 0."""
    n = len(masks)
    if not n:
        return np.zeros(0, dtype=np.int64)
    P = np.asarray(P, dtype=np.float64)
    if weight > 0 and n > 1:
        owner = np.full(masks[0].shape, -1, dtype=np.int32)
        for i, m in enumerate(masks):
            owner[m] = i
        a = np.concatenate([owner[:, :-1].ravel(), owner[:-1, :].ravel()])
        b = np.concatenate([owner[:, 1:].ravel(), owner[1:, :].ravel()])
        keep = (a != b) & (a >= 0) & (b >= 0)
        A = np.zeros((n, n))
        np.add.at(A, (a[keep], b[keep]), 1.0)
        A = A + A.T
        A /= np.maximum(A.sum(axis=1, keepdims=True), 1.0)
        P = P + weight * (A @ P)
    return np.where(P.sum(axis=1) > 0, P.argmax(axis=1), -1) if P.shape[1] else np.full(n, -1)


def proposal_like_regions(image: np.ndarray, segments: Sequence[tuple[str, np.ndarray]], method: str = "slic",
                          min_purity: float = 0.75, **options) -> list[tuple[str, np.ndarray]]:
    """Regions of a labelled image that look like the queries a generator makes: the proposals
    of generator `method` (with `options`), each named by the majority ground-truth class of its
    pixels and cut to those pixels; proposals whose majority holds less than `min_purity` of
    their labelled pixels are left out. `segments` are (class name, bool mask) pairs."""
    from .proposals import propose

    names = sorted({n for n, _ in segments})
    gt = np.full(image.shape[:2], -1, dtype=np.int64)
    for n, m in segments:
        gt[np.asarray(m, dtype=bool)] = names.index(n)
    out = []
    for m in propose(method, image, **options):
        v = gt[m]
        v = v[v >= 0]
        if not len(v):
            continue
        counts = np.bincount(v, minlength=len(names))
        c = int(counts.argmax())
        if counts[c] >= min_purity * len(v):
            out.append((names[c], m & (gt == c)))
    return out
