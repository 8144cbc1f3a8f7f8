"""`classic` (classic-v1): weights-free per-mask statistics that carry real signal (v1 features).

Per-pixel channels (CIE-Lab colour and its square, one-hot Lab histogram bins, Sobel
gradients, |LoG| at three scales, the row coordinate, gradient orientation energy) are
mean-pooled inside each mask with the same area-weighted matrix product as the neural
embedders; from the means of x and x^2 come the stds. The 38 statistics are standardised
with constants fitted on CamVid train (benchmarks/fit_classic_constants.py), block-weighted and
L2-normalised. The version is the spec's architecture and part of the embedder id;
`classic_v2` adds features that carry better across scenes; `classic_embedder` turns a
version into an embedder (versions are entries of its `CLASSIC_VERSIONS` registry).
"""
from __future__ import annotations

import numpy as np

from .channel_parts import ChannelParts, bin_codes, positions
from .colour import rgb_to_lab
from .laplace import gaussian_laplace_many

VERSION = "classic-v1"
L_BINS, A_BINS, B_BINS = 8, 6, 6
AB_RANGE = (-30.0, 30.0)  # a*, b* histogram range (values outside go to the end bins)
LOG_SIGMAS = (1.0, 2.0, 4.0)
N_CHANNELS = 6 + L_BINS + A_BINS + B_BINS + 4 + len(LOG_SIGMAS) + 2 + 3  # 38
FEATURE_NAMES = (
    ["L_mean", "a_mean", "b_mean", "L_std", "a_std", "b_std"]
    + [f"hist_L{i}" for i in range(L_BINS)] + [f"hist_a{i}" for i in range(A_BINS)]
    + [f"hist_b{i}" for i in range(B_BINS)]
    + ["grad_mean", "grad_std", "absdx_mean", "absdy_mean"]
    + [f"abslog_s{s:g}" for s in LOG_SIGMAS]
    + ["row_mean", "row_std", "orient_xx", "orient_yy", "orient_xy"]
)
# v1 standardisation constants: mean and population std of the statistics of the 3,534
# CamVid train ground-truth segments (benchmarks/fit_classic_constants.py regenerates them).
MU = np.array([
    36.60346, -0.03736, -1.70788, 14.6774, 3.12035, 4.63682, 0.25373, 0.20758, 0.15889, 0.11166, 0.07529,
    0.04291, 0.0305, 0.11945, 0.00157, 0.02292, 0.52622, 0.42086, 0.02079, 0.00764, 0.01362, 0.04872,
    0.58099, 0.31799, 0.02923, 0.00944, 5.08871, 5.20161, 3.47475, 2.63761, 3.30904, 0.92983, 0.25464,
    0.47982, 0.08633, 0.5579, 0.4421, 0.00226], np.float32)
SD = np.array([
    24.70495, 2.94444, 3.67124, 8.43073, 2.53658, 3.30127, 0.29184, 0.18155, 0.14626, 0.1309, 0.10043,
    0.06617, 0.05025, 0.27489, 0.01544, 0.09711, 0.24419, 0.23957, 0.05626, 0.03048, 0.05265, 0.07461,
    0.2776, 0.25743, 0.07353, 0.03281, 3.41754, 2.47891, 2.7591, 1.79175, 2.28243, 0.57523, 0.1457,
    0.19441, 0.05162, 0.2038, 0.2038, 0.05492], np.float32)
# Block weights after standardisation: the 20 histogram bins count half.
WEIGHTS = np.array([1.0] * 6 + [0.5] * (L_BINS + A_BINS + B_BINS) + [1.0] * 12, np.float32)
assert len(MU) == len(SD) == len(WEIGHTS) == len(FEATURE_NAMES) == N_CHANNELS


def working_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(h', w') with the long side at most `max_side` (aspect kept)."""
    if not max_side or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def lab_and_gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HxWx3 uint8 RGB -> (CIE-Lab (H, W, 3) float32, Sobel gx, gy of its L channel)."""
    from scipy import ndimage as ndi

    lab = rgb_to_lab(image)
    L = lab[..., 0]
    return lab, ndi.sobel(L, 1) / 8.0, ndi.sobel(L, 0) / 8.0


def channel_parts(lab: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> ChannelParts:
    """The 38 v1 channels from `lab_and_gradients`: 18 planes and the three Lab histograms as codes."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    mag = np.hypot(gx, gy)
    pos = positions(*L.shape)
    parts = [L, a, b, L * L, a * a, b * b]
    parts += [bin_codes(L, 0.0, 100.0, L_BINS), bin_codes(a, *AB_RANGE, A_BINS), bin_codes(b, *AB_RANGE, B_BINS)]
    parts += [mag, mag * mag, np.abs(gx), np.abs(gy)]
    parts += [np.abs(log) for log in gaussian_laplace_many(L, LOG_SIGMAS)]
    parts += [pos["y"], pos["y2"], gx * gx, gy * gy, gx * gy]
    return ChannelParts(parts)


def channel_list(lab: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> list[np.ndarray]:
    """The 38 v1 channels from `lab_and_gradients`, as (H, W) arrays (some bool or broadcast)."""
    return channel_parts(lab, gx, gy).as_list()


def pooled_means(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB and (n, H * W) mask weights -> (n, 38) pooled channel means (no planes
    written for the histogram bins)."""
    return channel_parts(*lab_and_gradients(image)).pooled(weights)


def dense_channels(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> (38, H, W) float32 per-pixel channels (see module doc)."""
    return channel_parts(*lab_and_gradients(image)).dense()


def moment_std(m: np.ndarray, i: int, j: int) -> np.ndarray:
    """Std from pooled moments: column i holds mean(x), column j mean(x^2)."""
    return np.sqrt(np.maximum(m[:, j] - m[:, i] ** 2, 0.0))


def statistics(means: np.ndarray) -> np.ndarray:
    """(n, 38) pooled channel means -> (n, 38) raw statistics in FEATURE_NAMES order."""
    m = np.asarray(means, np.float64)

    def std(i, j):
        return moment_std(m, i, j)

    energy = np.maximum(m[:, 35] + m[:, 36], 1e-6)
    cols = [m[:, 0], m[:, 1], m[:, 2], std(0, 3), std(1, 4), std(2, 5)]
    cols += [m[:, i] for i in range(6, 26)]
    cols += [m[:, 26], std(26, 27), m[:, 28], m[:, 29], m[:, 30], m[:, 31], m[:, 32]]
    cols += [m[:, 33], std(33, 34), m[:, 35] / energy, m[:, 36] / energy, m[:, 37] / energy]
    return np.stack(cols, axis=1).astype(np.float32)

