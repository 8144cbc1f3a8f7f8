"""The classic channels as computed before issue 24's rework, kept whole as the oracle of the
new code and the "today" side of classic_throughput.py: skimage's `rgb2lab` and
`local_binary_pattern`, a stable `np.argsort` for the luminance rank, every indicator channel
written as a plane. Only the version constants come from the package."""
from __future__ import annotations

import numpy as np


def _one_hot(values: np.ndarray, lo: float, hi: float, bins: int) -> list[np.ndarray]:
    idx = np.clip(((values - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    return list((idx[None] == np.arange(bins)[:, None, None]).astype(np.float32))


def _lab_and_gradients(image: np.ndarray):
    from scipy import ndimage as ndi
    from skimage.color import rgb2lab

    lab = rgb2lab(image).astype(np.float32)
    L = lab[..., 0]
    return lab, ndi.sobel(L, 1) / 8.0, ndi.sobel(L, 0) / 8.0


def _v1_channels(lab, gx, gy) -> list[np.ndarray]:
    from scipy import ndimage as ndi

    from knnclip_core.embedders.classic import A_BINS, AB_RANGE, B_BINS, L_BINS, LOG_SIGMAS

    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    h, w = L.shape
    mag = np.hypot(gx, gy)
    rows = np.broadcast_to((np.arange(h, dtype=np.float32) / h)[:, None], (h, w))
    chans = [L, a, b, L * L, a * a, b * b]
    chans += _one_hot(L, 0.0, 100.0, L_BINS) + _one_hot(a, *AB_RANGE, A_BINS) + _one_hot(b, *AB_RANGE, B_BINS)
    chans += [mag, mag * mag, np.abs(gx), np.abs(gy)]
    chans += [np.abs(ndi.gaussian_laplace(L, s)) for s in LOG_SIGMAS]
    chans += [rows, rows * rows, gx * gx, gy * gy, gx * gy]
    return chans


def _v2_extra_channels(lab, gx, gy) -> list[np.ndarray]:
    from skimage.feature import local_binary_pattern

    from knnclip_core.embedders.classic_v2 import LBP_SCALES, ORIENT_BINS

    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    h, w = L.shape
    lz = (L - L.mean()) / (L.std() + 1e-3)
    ar, br = a - a.mean(), b - b.mean()
    rank = np.empty(L.size, np.float32)
    rank[np.argsort(L, axis=None, kind="stable")] = np.linspace(0.0, 1.0, L.size, dtype=np.float32)
    rank = rank.reshape(h, w)
    x = np.broadcast_to((np.arange(w, dtype=np.float32) / w)[None, :], (h, w))
    xc = np.abs(x - 0.5)
    y = np.broadcast_to((np.arange(h, dtype=np.float32) / h)[:, None], (h, w))
    mag = np.hypot(gx, gy)
    orient = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * ORIENT_BINS).astype(np.int64), ORIENT_BINS - 1)
    gray = np.asarray(np.clip(L * 2.55, 0, 255), np.uint8)
    chans = [lz, lz * lz, ar, ar * ar, br, br * br, rank, rank * rank, x, x * x, xc, xc * xc,
             y, y * y, y ** 3, y ** 4]
    chans += [mag * (orient == k) for k in range(ORIENT_BINS)]
    for p, r in LBP_SCALES:
        codes = local_binary_pattern(gray, p, r, "uniform").astype(np.int64)
        chans += [codes == k for k in range(p + 2)]
    return chans


def _stacked(chans: list[np.ndarray]) -> np.ndarray:
    out = np.empty((len(chans), *chans[0].shape), np.float32)
    for i, c in enumerate(chans):
        out[i] = c
    return out


def today_dense_channels(image: np.ndarray) -> np.ndarray:
    """(38, H, W) float32 classic-v1 channels, as computed before the rework."""
    return _stacked(_v1_channels(*_lab_and_gradients(image)))


def today_dense_channels_v2(image: np.ndarray) -> np.ndarray:
    """(90, H, W) float32 classic-v2 channels, as computed before the rework."""
    base = _lab_and_gradients(image)
    return _stacked(_v1_channels(*base) + _v2_extra_channels(*base))
