"""Fitting the classic embedders' standardisation constants from a set of segments.

`raw_statistics(backbone, items)` runs the product's classic embedder with `raw=True`
(dense channels, mask pooling, statistics; no standardisation) over (image, masks) pairs;
`fit_constants(stats)` gives the per-feature mean and population std that a version's
`mu`/`sd` hold; `with_constants(version, mu, sd)` is that version refitted, and
`embed_from_statistics(version, stats)` the product's vectors from the statistics.
benchmarks/fit_classic_constants.py regenerates the committed constants with them.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

import numpy as np

from .backbones import get_spec
from .classic_embedder import ClassicEmbedder, ClassicVersion, classic_version
from .pooling import l2_normalize

DECIMALS = 5  # the committed constants are rounded to 5 decimals


def raw_statistics(backbone: str, items: Iterable[tuple[np.ndarray, list]]) -> np.ndarray:
    """(n, D) unstandardised statistics of every mask of every (HxWx3 uint8 image, masks) pair,
    in order, through the classic embedder of configured backbone `backbone`."""
    emb = ClassicEmbedder(get_spec(backbone), raw=True)
    rows = [emb.embed_masks(image, masks) for image, masks in items]
    return np.concatenate(rows) if rows else np.zeros((0, emb.dim), np.float32)


# A column whose std is below this fraction of its mean is float32 rounding noise, not spread.
NOISE_SPREAD = 1e-5


def fit_constants(stats: np.ndarray, decimals: Optional[int] = DECIMALS) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sd) float32: per-column mean and population std of `stats` (n, D), rounded to
    `decimals`. Raises ValueError when there are fewer than 2 rows or a column is constant (its
    spread within float32 rounding of its mean: standardising it would only amplify noise)."""
    stats = np.asarray(stats, np.float64)
    if stats.ndim != 2 or len(stats) < 2:
        raise ValueError(f"fitting the classic constants needs at least 2 segments, got {len(stats)}")
    mu, sd = stats.mean(axis=0), stats.std(axis=0)
    if decimals is not None:
        mu, sd = np.round(mu, decimals), np.round(sd, decimals)
    constant = sd <= NOISE_SPREAD * np.abs(mu)
    constant |= sd <= 0
    if constant.any():
        raise ValueError(f"feature column(s) {np.nonzero(constant)[0].tolist()} are constant over the "
                         f"{len(stats)} segments; fit on more varied images")
    return mu.astype(np.float32), sd.astype(np.float32)


def with_constants(version: ClassicVersion | str, mu: np.ndarray, sd: np.ndarray) -> ClassicVersion:
    """`version` (or the version of backbone name) with standardisation constants mu, sd."""
    if isinstance(version, str):
        version = classic_version(get_spec(version))
    if np.shape(mu) != version.mu.shape or np.shape(sd) != version.sd.shape:
        raise ValueError(f"{version.name} has {version.dim} features, constants of shape {np.shape(mu)} given")
    return dataclasses.replace(version, mu=np.asarray(mu, np.float32), sd=np.asarray(sd, np.float32))


def embed_from_statistics(version: ClassicVersion, stats: np.ndarray) -> np.ndarray:
    """The embedder's L2-normalised vectors from `raw_statistics` rows under `version`'s constants."""
    return l2_normalize(version.standardise(np.asarray(stats, np.float32)))
