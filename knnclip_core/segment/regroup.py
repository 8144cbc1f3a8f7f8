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


def agreeing_groups(masks: Sequence[np.ndarray], classes: Sequence[int]) -> list[list[int]]:
    """Groups (lists of proposal indices, in index order, groups ordered by their first member)
    of proposals joined where two touch (4-neighbourhood) and share a class >= 0. A proposal
    with class < 0 stays alone. The masks need not be disjoint (later ones win where they overlap)."""
    n = len(masks)
    if not n:
        return []
    owner = np.full(masks[0].shape, -1, dtype=np.int32)
    for i, m in enumerate(masks):
        owner[m] = i
    classes = np.asarray(classes, dtype=np.int64)
    pairs = touching_pairs(owner)
    if len(pairs):
        pairs = pairs[(classes[pairs[:, 0]] == classes[pairs[:, 1]]) & (classes[pairs[:, 0]] >= 0)]
    root = _groups(n, pairs)
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(int(root[i]), []).append(i)
    return sorted(out.values(), key=lambda g: g[0])
