"""The classic embedders: a registry of feature versions (`CLASSIC_VERSIONS`, keyed by the
spec's architecture) and the Embedder that runs one.

A version is data: its dense channels, its raw statistics of pooled channel means, and the
standardisation constants and block weights applied to them (fitted by
`classic_fit.fit_constants`; benchmarks/fit_classic_constants.py regenerates them). New versions register here; nothing else dispatches on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..plugins import Registry
from . import classic, classic_v2
from .backbones import BackboneSpec
from .base import Embedder, Preparer, format_id
from .pooling import l2_normalize


@dataclass(frozen=True)
class ClassicVersion:
    """One classic feature version: `dense(image) -> (C, H, W)` channels, `pooled(image, (n, H*W)
    mask weights) -> (n, C)` their per-mask means (without writing every channel), `raw(pooled
    (n, C)) -> (n, D)` statistics, standardised as (raw - mu) / sd * weights."""

    name: str
    dense: Callable[[np.ndarray], np.ndarray]
    pooled: Callable[[np.ndarray, np.ndarray], np.ndarray]
    raw: Callable[[np.ndarray], np.ndarray]
    mu: np.ndarray
    sd: np.ndarray
    weights: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.mu)

    def standardise(self, stats: np.ndarray) -> np.ndarray:
        """(n, D) raw statistics -> (n, D) standardised, weighted features (not normalised)."""
        return ((stats - self.mu) / self.sd * self.weights).astype(np.float32)

    def features(self, pooled: np.ndarray) -> np.ndarray:
        """(n, C) pooled channel means -> (n, D) standardised, weighted features (not normalised)."""
        return self.standardise(self.raw(pooled))


CLASSIC_VERSIONS: Registry[ClassicVersion] = Registry("classic version")
CLASSIC_VERSIONS.add(classic.VERSION, ClassicVersion(
    classic.VERSION, classic.dense_channels, classic.pooled_means, classic.statistics, classic.MU, classic.SD, classic.WEIGHTS))
CLASSIC_VERSIONS.add(classic_v2.VERSION, ClassicVersion(
    classic_v2.VERSION, classic_v2.dense_channels_v2, classic_v2.pooled_means_v2, classic_v2.statistics_v2, np.concatenate([classic.MU, classic_v2.MU2]),
    np.concatenate([classic.SD, classic_v2.SD2]), np.concatenate([classic.WEIGHTS, np.ones(len(classic_v2.MU2), np.float32)])))


def classic_version(spec: BackboneSpec) -> ClassicVersion:
    """The registered version named by the spec's architecture; ValueError naming the backbone otherwise."""
    if spec.architecture not in CLASSIC_VERSIONS:
        raise ValueError(f"backbone {spec.name!r}: unknown classic version {spec.architecture!r} "
                         f"(known: {', '.join(CLASSIC_VERSIONS.names())})")
    return CLASSIC_VERSIONS.get(spec.architecture)


class ClassicPreparer(Preparer):
    """Classic channels at the working size (long side at most `max_side`): dense, or pooled
    per mask where they are made (`pooled_means`)."""

    features_on_host = True

    def __init__(self, max_side: int | None, dense: Callable[[np.ndarray], np.ndarray] = classic.dense_channels,
                 pooled: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None):
        self.max_side, self.dense, self.pooled = max_side, dense, pooled  # module-level functions: pickle by name

    def grid_hw(self, h: int, w: int) -> tuple[int, int]:
        return classic.working_size(h, w, self.max_side)

    def working_image(self, image: np.ndarray) -> np.ndarray:
        """The image resized to its working size (itself when it already fits)."""
        h, w = image.shape[:2]
        wh, ww = self.grid_hw(h, w)
        if (wh, ww) != (h, w):
            from PIL import Image

            image = np.asarray(Image.fromarray(image).resize((ww, wh), Image.BILINEAR))
        return image

    def pixels(self, image: np.ndarray) -> np.ndarray:
        return self.dense(self.working_image(image))

    def pooled_means(self, image: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.pooled is None:
            return super().pooled_means(image, weights)
        return self.pooled(self.working_image(image), weights)


class ClassicEmbedder(Embedder):
    """Weights-free colour/texture/position statistics pooled per mask (v1: 38-d, v2: 89-d).
    With `raw=True` it returns the unstandardised statistics (for fitting the constants)."""

    family = "classic"
    has_text = False

    def __init__(self, spec: BackboneSpec, device: str = "cpu", raw: bool = False):
        super().__init__(spec, device)
        self.version = classic_version(spec)
        self.max_side = spec.max_side
        self.dim = self.version.dim
        self.raw = raw
        self.id = self.id_for(spec) + ("|raw" if raw else "")
        self.prep = ClassicPreparer(self.max_side, self.version.dense, self.version.pooled)

    @staticmethod
    def id_for(spec: BackboneSpec) -> str:
        """The id of this spec's embedder."""
        return format_id(ClassicEmbedder.family, spec, "weights-free", classic_version(spec).dim,
                         f"max_side={spec.max_side or 0}")

    def forward(self, x):
        return x.permute(0, 2, 3, 1)  # the channels are the features

    def embed_batch(self, items) -> list[np.ndarray]:
        """Pooled where the channels are made (no model, no dense channels kept)."""
        out = []
        for image, masks in items:
            image = np.asarray(image)
            weights = self.prep.mask_weights_of(masks, *image.shape[:2])
            out.append(self.finalize(self.prep.pooled_means(image, weights)) if len(weights)
                       else np.zeros((0, self.dim), np.float32))
        return out

    def finalize(self, pooled: np.ndarray) -> np.ndarray:
        if self.raw:
            return self.version.raw(pooled)
        return l2_normalize(self.version.features(pooled))
