"""`classic-v2`: the v1 statistics plus features meant to carry across scenes and lighting.

Added per-pixel channels (all pooled per mask like v1's):
- colour relative to the image: Lab minus the image's mean (L also divided by its std),
  and the luminance rank within the image (histogram equalised), for exposure and white
  balance shifts between drives;
- column position (distance from the centre) and higher row moments;
- a gradient orientation histogram (6 bins over 0..pi, magnitude weighted);
- uniform local binary patterns at radii 1, 3 and 6 (10 bins each), contrast invariant.
The 51 added statistics are standardised with constants fixed at v2 (measured once on
CamVid train ground-truth segments) and appended to v1's 38 weighted ones.

Leaving one CamVid drive out of the memory in turn, v1 scores 0.49/0.71/0.66 and v2 about
0.67/0.79/0.76 (benchmarks/classic_accuracy.py), at about a third of v1's speed.
"""
from __future__ import annotations

import numpy as np

from .classic import N_CHANNELS, channels_from, lab_and_gradients, moment_std, statistics

VERSION = "classic-v2"
ORIENT_BINS = 6
LBP_SCALES = ((8, 1.0), (8, 3.0), (8, 6.0))  # (neighbours, radius); uniform codes give P + 2 bins
N_LBP = sum(p + 2 for p, _ in LBP_SCALES)
N_EXTRA_CHANNELS = 6 + 2 + 4 + 4 + ORIENT_BINS + N_LBP  # 52
N_EXTRA_FEATURES = 6 + 2 + 3 + 4 + ORIENT_BINS + N_LBP  # 51
DIM = N_CHANNELS + N_EXTRA_FEATURES  # 89

# v2 standardisation of the added statistics (CamVid train ground-truth segments).
MU2 = np.array([
    -0.24253, 0.51401, 0.58963, 3.12035, -0.10398, 4.63682, 0.41907, 0.19576, 0.24171, 0.18752, 0.09827,
    0.47982, 0.08633, 0.17844, 0.12366, 0.22209, 0.10773, 0.17299, 0.17708, 0.1003, 0.21981, 0.22645,
    0.28522, 0.20127, 0.29489, 0.35173, 0.3399, 0.24579, 0.30551, 0.38823, 0.37272, 0.23946, 0.28727,
    0.19686, 0.22753, 0.2706, 0.2656, 0.22874, 0.33344, 0.35783, 0.53019, 0.24947, 0.28574, 0.1948,
    0.21333, 0.24522, 0.25228, 0.22849, 0.34167, 0.3582, 0.53997], np.float32)
SD2 = np.array([
    0.80284, 0.28701, 2.73413, 2.53658, 3.50113, 3.30127, 0.2175, 0.07706, 0.09776, 0.10278, 0.04442,
    0.19441, 0.05162, 0.17322, 0.15322, 0.10847, 0.04614, 0.1009, 0.10267, 0.03972, 0.10753, 0.05703,
    0.05935, 0.05452, 0.05107, 0.09413, 0.04753, 0.06182, 0.05511, 0.15079, 0.0647, 0.06503, 0.06714,
    0.04996, 0.05359, 0.07029, 0.05249, 0.05001, 0.06022, 0.13535, 0.08331, 0.08011, 0.07877, 0.05303,
    0.05916, 0.07313, 0.0639, 0.05041, 0.06987, 0.13222, 0.08246], np.float32)
assert len(MU2) == len(SD2) == N_EXTRA_FEATURES


def extra_channels(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (52, H, W) float32: the channels v2 adds to v1's."""
    return extra_channels_from(*lab_and_gradients(image))


def extra_channels_from(lab: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """`extra_channels` from `lab_and_gradients` (shared with v1's channels)."""
    from skimage.feature import local_binary_pattern

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
    return np.stack(chans).astype(np.float32, copy=False)


def dense_channels_v2(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (90, H, W) float32: v1's 38 channels, then v2's 52 (Lab and the
    gradients computed once for both)."""
    base = lab_and_gradients(image)
    return np.concatenate([channels_from(*base), extra_channels_from(*base)])


def extra_statistics(means: np.ndarray) -> np.ndarray:
    """(n, 52) pooled means of `extra_channels` -> (n, 51) raw statistics."""
    m = np.asarray(means, np.float64)

    def std(i, j):
        return moment_std(m, i, j)

    cols = [m[:, 0], std(0, 1), m[:, 2], std(2, 3), m[:, 4], std(4, 5), m[:, 6], std(6, 7)]
    cols += [m[:, 10], std(8, 9), std(10, 11)]
    cols += [m[:, 12], std(12, 13), m[:, 14], m[:, 15]]
    orient = m[:, 16:16 + ORIENT_BINS]
    cols += list((orient / np.maximum(orient.sum(axis=1, keepdims=True), 1e-9)).T)
    cols += list(np.sqrt(np.maximum(m[:, 16 + ORIENT_BINS:], 0.0)).T)
    return np.stack(cols, axis=1).astype(np.float32)


def statistics_v2(pooled: np.ndarray) -> np.ndarray:
    """(n, 90) pooled channel means -> (n, 89) raw statistics: v1's 38, then the 51 added."""
    return np.concatenate([statistics(pooled[:, :N_CHANNELS]), extra_statistics(pooled[:, N_CHANNELS:])], axis=1)
