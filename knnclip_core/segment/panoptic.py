"""Panoptic composition as FC-CLIP forms it (its `panoptic_inference`), over binary proposals.

`compose(masks, labels, scores, is_thing, params)`:

1. a proposal is kept when it has a class (not `unknown`) and its score is at least
   `score_threshold` (FC-CLIP's object mask threshold);
2. every pixel goes to the kept proposal with the highest score that covers it (painting by
   score, not by area: FC-CLIP's argmax over score x mask);
3. a kept proposal whose visible part is less than `overlap_threshold` of its own mask (mostly
   hidden under better ones, e.g. a mask nested inside another) is dropped: its visible pixels
   are void in the panoptic map;
4. stuff segments of one class become one segment; with `merge_things`, touching segments of
   one thing class become one instance (the fragments of an over-segmented object: the SLIC
   regions of one car are one car). The caller decides when this applies: the Segmenter does
   it for generated proposals, never for masks the caller supplies (those are instances).

`paint="area"` is the composition before (largest first, smaller on top, no thresholds when
they are 0, no merge); kept to measure before and after side by side (benchmarks/proposals.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

PAINTS = ("score", "area")


@dataclass
class PanopticParams:
    """Panoptic composition knobs (the `worker.panoptic` settings)."""

    score_threshold: float = 0.0    # proposals scoring below this stay out of the panoptic map
    overlap_threshold: float = 0.5  # drop a proposal whose visible part is below this share of its mask
    merge_things: bool = True       # touching generated proposals of one thing class -> one instance
    paint: str = "score"            # 'score' (FC-CLIP) or 'area' (before: largest first)

    def __post_init__(self):
        assert self.paint in PAINTS, f"paint must be one of {PAINTS}"
        assert 0.0 <= self.overlap_threshold <= 1.0


def paint_order(areas: np.ndarray, scores: np.ndarray, paint: str) -> np.ndarray:
    """Indices in painting order (later ones land on top): lowest score first (ties: larger
    first) for 'score', largest first for 'area'."""
    areas = np.asarray(areas, dtype=np.int64)
    if paint == "area":
        return np.argsort(-areas, kind="stable")
    return np.lexsort((-areas, np.asarray(scores, dtype=np.float64)))


def touching_pairs(owner: np.ndarray) -> np.ndarray:
    """(m, 2) unique pairs (a < b) of owner values >= 0 whose pixels touch (4-neighbourhood)."""
    a = np.concatenate([owner[:, :-1].ravel(), owner[:-1, :].ravel()])
    b = np.concatenate([owner[:, 1:].ravel(), owner[1:, :].ravel()])
    keep = (a != b) & (a >= 0) & (b >= 0)
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _groups(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find root of each of n items joined by `pairs`."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], dtype=np.int64)


def compose(masks: Sequence[np.ndarray], labels: Sequence[int], scores: Sequence[float],
            is_thing: Callable[[int], bool], params: PanopticParams, merge: bool = True
            ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Semantic owner map and panoptic output of n proposals of one (H, W) image.

    `labels[i]` class index or -1 (unknown), `scores[i]` its score, `is_thing(label)`;
    `merge`: whether thing fragments may merge (with `params.merge_things`). Returns
    (owner (H, W) int32: the proposal painted at each pixel for the semantic map, every
    proposal taking part, -1 where none covers; panoptic_map (H, W) int32, 0 = void;
    panoptic: [{id, class_index, is_thing, area, score, segments}])."""
    n = len(masks)
    assert len(labels) == n and len(scores) == n
    if not n:
        raise ValueError("compose needs at least one proposal (the image size comes from them)")
    h, w = masks[0].shape
    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    areas = np.array([int(m.sum()) for m in masks], dtype=np.int64)
    owner = np.full((h, w), -1, dtype=np.int32)
    for i in paint_order(areas, scores, params.paint):
        owner[masks[i]] = i
    kept = (labels >= 0) & (scores >= params.score_threshold)
    if params.paint == "area":  # before: the semantic painting, pixels of dropped proposals void
        pan_owner = np.where((owner >= 0) & kept[np.maximum(owner, 0)], owner, -1).astype(np.int32)
    else:
        pan_owner = np.full((h, w), -1, dtype=np.int32)
        for i in paint_order(areas, scores, params.paint):
            if kept[i]:
                pan_owner[masks[i]] = i
    visible = np.bincount(pan_owner.ravel() + 1, minlength=n + 1)[1:]
    for i in np.nonzero(kept)[0]:
        if visible[i] == 0 or visible[i] < params.overlap_threshold * areas[i]:
            kept[i] = False
    pan_owner = np.where((pan_owner >= 0) & kept[np.maximum(pan_owner, 0)], pan_owner, -1).astype(np.int32)
    things = np.array([bool(kept[i] and is_thing(int(labels[i]))) for i in range(n)])
    pairs = touching_pairs(pan_owner) if merge and params.merge_things else np.zeros((0, 2), np.int64)
    if len(pairs):
        same = (labels[pairs[:, 0]] == labels[pairs[:, 1]]) & things[pairs[:, 0]] & things[pairs[:, 1]]
        pairs = pairs[same]
    group = _groups(n, pairs)
    pan_of = np.zeros(n + 1, dtype=np.int32)  # proposal -> panoptic id (last entry: pixels of none)
    panoptic: list[dict] = []
    entry_of: dict = {}
    for i in sorted(np.nonzero(kept)[0], key=lambda j: -scores[j]):  # ids in score order, as FC-CLIP
        key = ("thing", int(group[i])) if things[i] else ("stuff", int(labels[i]))
        entry = entry_of.get(key)
        if entry is None:
            entry = entry_of[key] = {"id": len(panoptic) + 1, "class_index": int(labels[i]),
                                     "is_thing": bool(things[i]), "area": 0, "score": 0.0, "segments": []}
            panoptic.append(entry)
        entry["area"] += int(visible[i])
        entry["score"] = max(entry["score"], round(float(scores[i]), 6))
        entry["segments"].append(int(i))
        pan_of[i] = entry["id"]
    for e in panoptic:
        e["segments"].sort()
    return owner, pan_of[pan_owner], panoptic
