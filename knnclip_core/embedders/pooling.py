"""Mask pooling: masks -> area weights on a feature grid -> one matrix product per image.

A mask of an HxW image is resized to the (gh, gw) feature grid with exact area
weighting: cell (i, j) gets the fraction of its area covered by the mask. All masks
of one image are pooled at once: `W (n, cells) @ F (cells, D)`, rows divided by their
total weight, then L2-normalised.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

logger = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32: entry [o, i] = fraction of output cell o covered by input pixel i.

    Output cell o spans [o * n_in / n_out, (o + 1) * n_in / n_out) in input pixel units;
    rows sum to 1.
    """
    assert n_in > 0 and n_out > 0, (n_in, n_out)
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return (overlap / (n_in / n_out)).astype(np.float32)


def mask_weights(masks, grid_hw: tuple[int, int]) -> np.ndarray:
    """Area-weighted masks on a feature grid.

    Takes `masks` (n, H, W) bool/uint8 (or a list of HxW) and `grid_hw` = (gh, gw);
    returns (n, gh * gw) float32, entry = fraction of the grid cell covered by the mask.
    """
    m = np.asarray(masks if not isinstance(masks, list) or masks else np.zeros((0, 1, 1)), dtype=np.float32)
    assert m.ndim == 3, m.shape
    n, h, w = m.shape
    gh, gw = grid_hw
    if n == 0:
        return np.zeros((0, gh * gw), np.float32)
    if (h, w) == (gh, gw):  # same grid: the mask itself
        return m.reshape(n, gh * gw)
    rh, rw = area_matrix(h, gh), area_matrix(w, gw)
    # (gh, H) @ (n, H, W) @ (W, gw) -> (n, gh, gw), as two plain GEMMs (numpy's stacked
    # matmul does not use BLAS). Columns first: the big operand is read once, in place,
    # and only the small (n, H, gw) intermediate is transposed.
    t = m.reshape(n * h, w) @ rw.T  # (n*H, gw)
    t = rh @ t.reshape(n, h, gw).transpose(1, 0, 2).reshape(h, n * gw)  # (gh, n*gw)
    return np.ascontiguousarray(t.reshape(gh, n, gw).transpose(1, 0, 2)).reshape(n, gh * gw)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of `x` divided by their L2 norm (zero rows stay zero); float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)


def pool(weights, feats, normalize: bool = True):
    """Weighted mean of dense features for every mask of one image.

    `weights` (n, cells) from `mask_weights`, `feats` (cells, D) (numpy or torch, same kind).
    Returns (n, D): each row the weight-averaged feature, L2-normalised when `normalize`.
    A mask with zero weight gives a zero row.
    """
    assert weights.shape[1] == feats.shape[0], (weights.shape, feats.shape)
    if isinstance(feats, np.ndarray):
        total = weights.sum(axis=1, keepdims=True)
        out = (weights @ feats) / np.maximum(total, 1e-12)
        return l2_normalize(out) if normalize else out.astype(np.float32)
    import torch

    w = weights.to(feats.dtype)
    out = (w @ feats) / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
    if normalize:
        out = torch.nn.functional.normalize(out, dim=1)
    return out
