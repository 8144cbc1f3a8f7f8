"""Mask proposal generators: image -> list of boolean HxW masks.

Each generator is registered in `PROPOSALS` under a short name and called as
`generator(image, masks=None, **params) -> list[np.ndarray]` where `image` is an
RGB uint8 array (H, W, 3) and every returned mask is a bool (H, W) array.

- `slic`: SLIC superpixels (scikit-image) merged into regions by feature similarity
  (mean and spread of CIE-Lab colour, plus position) over the adjacency graph.
- `grid`: a regular rows x cols grid of cells.
- `masks`: the masks the caller supplies (ground truth, another segmenter).
- `sam`: Segment Anything automatic masks, only when `segment_anything` is installed
  and a local checkpoint is given (`checkpoint=` or $KNNCLIP_SAM_CHECKPOINT).
- `mask2former`: a Mask2Former checkpoint from a local folder through `transformers`
  (`checkpoint=` or $KNNCLIP_MASK2FORMER_DIR; segment/mask2former.py).
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import InputError, KnnclipError
from ..plugins import Registry
from .image_size import check_image, downscaled, upscale_labels  # noqa: F401 (upscale_labels: re-exported)
from .mask2former import mask2former_proposals

logger = logging.getLogger(__name__)

ProposalFn = Callable[..., list]
PROPOSALS: Registry[ProposalFn] = Registry("mask proposal generator")
PROPOSALS.add("mask2former", mask2former_proposals)  # imports transformers only when used


@PROPOSALS.register("grid")
def grid_proposals(image: np.ndarray, masks=None, rows: int = 4, cols: int = 4, **_) -> list[np.ndarray]:
    """Split the image into `rows` x `cols` rectangular cells; returns one bool mask per cell."""
    h, w = check_image(image)
    assert rows >= 1 and cols >= 1
    ys = np.linspace(0, h, min(rows, h) + 1).astype(int)
    xs = np.linspace(0, w, min(cols, w) + 1).astype(int)
    out = []
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            m = np.zeros((h, w), dtype=bool)
            m[y0:y1, x0:x1] = True
            out.append(m)
    return out


@PROPOSALS.register("masks")
def given_masks(image: np.ndarray, masks: Optional[Sequence[np.ndarray]] = None, **_) -> list[np.ndarray]:
    """Return the caller's masks (bool HxW each, same size as the image); raises InputError when
    none are given or a mask does not match the image."""
    h, w = check_image(image)
    if not masks:
        raise InputError("the 'masks' proposal generator needs masks supplied by the caller.")
    out = []
    for m in masks:
        m = np.asarray(m).astype(bool)
        if m.shape != (h, w):
            raise InputError(f"a supplied mask is {m.shape[1]}x{m.shape[0]} but the image is {w}x{h}.")
        if m.any():
            out.append(m)
    return out


def _region_features(lab: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per-label feature: Lab mean, Lab std and centroid (normalised coordinates)."""
    h, w = labels.shape
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    count[count == 0] = 1
    feats = []
    for c in range(3):
        v = lab[..., c].ravel().astype(np.float64)
        mean = np.bincount(flat, v, minlength=n) / count
        sq = np.bincount(flat, v * v, minlength=n) / count
        feats += [mean, np.sqrt(np.maximum(sq - mean * mean, 0))]
    yy, xx = np.mgrid[0:h, 0:w]
    feats.append(np.bincount(flat, yy.ravel() / h, minlength=n) / count * 100.0)
    feats.append(np.bincount(flat, xx.ravel() / w, minlength=n) / count * 100.0)
    f = np.stack(feats, axis=1)
    # weights: colour means matter most, spread and position less
    return f * np.array([1.0, 0.5, 1.0, 0.5, 1.0, 0.5, 0.1, 0.1])


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique (a, b) label pairs with a < b that touch horizontally or vertically."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def merge_regions(labels: np.ndarray, feats: np.ndarray, threshold: float, max_regions: int) -> np.ndarray:
    """Greedily merge adjacent regions, most similar pairs first, while their feature distance is
    below `threshold` or there are more than `max_regions` regions. Returns labels 0..m-1."""
    assert max_regions >= 1
    n = int(labels.max()) + 1
    base_pairs = _adjacent_pairs(labels)
    count = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    feats = feats.astype(np.float64).copy()
    parent = np.arange(n)
    alive = n
    while alive > 1:
        roots = _roots(parent)
        pairs = np.sort(roots[base_pairs], axis=1)
        pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
        if not len(pairs):
            break
        d = np.linalg.norm(feats[pairs[:, 0]] - feats[pairs[:, 1]], axis=1)
        needed = max(alive - max_regions, 0)
        used: set[int] = set()
        merged = 0
        for j in np.argsort(d, kind="stable"):
            if d[j] >= threshold and merged >= needed:
                break
            a, b = int(pairs[j, 0]), int(pairs[j, 1])
            if a in used or b in used:
                continue
            used.update((a, b))
            tot = count[a] + count[b]
            feats[a] = (feats[a] * count[a] + feats[b] * count[b]) / tot
            count[a] = tot
            parent[b] = a
            alive -= 1
            merged += 1
        if merged == 0:
            break
    _, relabelled = np.unique(_roots(parent)[labels], return_inverse=True)
    return relabelled.reshape(labels.shape)


def _roots(parent: np.ndarray) -> np.ndarray:
    """Compress a union-find parent array in place; returns the root of every element."""
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent[:] = nxt


@PROPOSALS.register("slic")
def slic_proposals(image: np.ndarray, masks=None, n_segments: int = 200, compactness: float = 10.0,
                   merge_threshold: float = 12.0, max_regions: int = 48, min_area: int = 16,
                   max_side: Optional[int] = None, seed: int = 0, **_) -> list[np.ndarray]:
    """SLIC superpixels merged by Lab colour/position similarity into at most `max_regions`
    regions; regions smaller than `min_area` pixels are dropped. With `max_side`, both run on the
    image downscaled to that longer side and the region labels are scaled back up (nearest), so
    the cost no longer grows with the megapixels. Returns bool masks of the full image."""
    from skimage.color import rgb2lab
    from skimage.segmentation import slic

    h, w = check_image(image)
    small = downscaled(image, max_side)
    labels = slic(small, n_segments=n_segments, compactness=compactness, start_label=0,
                  enforce_connectivity=True, channel_axis=-1)
    labels = np.unique(labels, return_inverse=True)[1].reshape(small.shape[:2])
    lab = rgb2lab(small)
    feats = _region_features(lab, labels, int(labels.max()) + 1)
    regions = upscale_labels(merge_regions(labels, feats, merge_threshold, max_regions), (h, w))
    out = [regions == r for r in range(int(regions.max()) + 1)]
    return [m for m in out if m.sum() >= min_area] or [np.ones((h, w), dtype=bool)]


@PROPOSALS.register("sam")
def sam_proposals(image: np.ndarray, masks=None, checkpoint: Optional[str] = None,
                  model_type: str = "vit_b", min_area: int = 16, **_) -> list[np.ndarray]:
    """Segment Anything automatic masks from a local checkpoint (`checkpoint` or
    $KNNCLIP_SAM_CHECKPOINT); raises KnnclipError when the package or checkpoint is missing."""
    check_image(image)
    checkpoint = checkpoint or os.environ.get("KNNCLIP_SAM_CHECKPOINT")
    try:
        import segment_anything  # type: ignore  # noqa: F401
    except ImportError:
        raise KnnclipError("the 'sam' proposals need the segment_anything package, which is not installed.") from None
    if not checkpoint or not os.path.isfile(checkpoint):
        raise KnnclipError("the 'sam' proposals need a local checkpoint (set KNNCLIP_SAM_CHECKPOINT).")
    found = _sam_generator(checkpoint, model_type).generate(image)
    return [np.asarray(f["segmentation"], dtype=bool) for f in found if f["area"] >= min_area]


@lru_cache(maxsize=2)
def _sam_generator(checkpoint: str, model_type: str):
    """The SAM automatic mask generator of a checkpoint, loaded once."""
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry  # type: ignore

    return SamAutomaticMaskGenerator(sam_model_registry[model_type](checkpoint=checkpoint))


def sam_available(checkpoint: Optional[str] = None) -> bool:
    """True when segment_anything imports and a local checkpoint file exists."""
    checkpoint = checkpoint or os.environ.get("KNNCLIP_SAM_CHECKPOINT")
    try:
        import segment_anything  # type: ignore  # noqa: F401
    except ImportError:
        return False
    return bool(checkpoint) and os.path.isfile(checkpoint)


def propose(name: str, image: np.ndarray, masks: Optional[Sequence[np.ndarray]] = None, **params) -> list[np.ndarray]:
    """Run the generator registered as `name`; raises KnnclipError for an unknown name."""
    try:
        fn = PROPOSALS.get(name)
    except KeyError as exc:
        raise KnnclipError(str(exc.args[0]) + ".") from None
    return fn(image, masks=masks, **params)

