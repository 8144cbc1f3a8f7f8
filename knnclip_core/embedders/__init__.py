"""Embedders: turn segments (image + mask) into L2-normalised vectors.

`get_embedder(name, device="auto", settings=None)` builds the backbone named in
configs/backbones.yaml; `embedder_id_for(name)` gives its id without building it;
`embedder_provenance(name)` the data that id is derived from (full spec, weights checksum);
`list_backbones()` lists them. Families are the one `FAMILIES` registry of
`EmbedderFamily` objects (open_clip, dinov2, classic): each builds an embedder and gives
its id.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from ..plugins import Registry
from .backbones import BackboneSpec, UnknownBackboneError, get_spec, list_backbones
from .base import Embedder, resolve_device
from .provenance import make_provenance

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "classic-v2"


@dataclass(frozen=True)
class EmbedderFamily:
    """A family of embedders: `build(spec, device, cache_dir) -> Embedder`, `id_for(spec) -> id`
    without loading weights, and `weights(spec) -> ResolvedWeights | None` (None: weights-free)."""

    name: str
    build: Callable[[BackboneSpec, str, object], Embedder]
    id_for: Callable[[BackboneSpec], str]
    weights: Callable[[BackboneSpec], object] = lambda spec: None


FAMILIES: Registry[EmbedderFamily] = Registry("embedder family")


def _classic_class():
    from .classic_embedder import ClassicEmbedder

    return ClassicEmbedder


def _open_clip_class():
    from .open_clip_family import OpenClipEmbedder

    return OpenClipEmbedder


def _dinov2_class():
    from .dinov2 import Dinov2Embedder

    return Dinov2Embedder


def _resolver(name: str):
    def resolve(spec: BackboneSpec):
        from . import weights

        return getattr(weights, name)(spec)
    return resolve


FAMILIES.add("classic", EmbedderFamily(
    "classic", lambda spec, device, cache_dir: _classic_class()(spec, device="cpu"),  # numpy/scipy: no GPU gain
    lambda spec: _classic_class().id_for(spec)))
FAMILIES.add("open_clip", EmbedderFamily(
    "open_clip", lambda spec, device, cache_dir: _open_clip_class()(spec, device=device, cache_dir=cache_dir),
    lambda spec: _open_clip_class().id_for(spec), _resolver("resolve_open_clip")))
FAMILIES.add("dinov2", EmbedderFamily(
    "dinov2", lambda spec, device, cache_dir: _dinov2_class()(spec, device=device),
    lambda spec: _dinov2_class().id_for(spec), _resolver("resolve_timm")))


def _spec(name: Optional[str], settings) -> BackboneSpec:
    """The spec of backbone `name` (default: settings.embed.backbone, else DEFAULT_BACKBONE)."""
    if name is None:
        name = settings.embed.backbone if settings is not None else DEFAULT_BACKBONE
    return get_spec(name)


def embedder_id_for(name: Optional[str] = None, settings=None) -> str:
    """The id `get_embedder(name)` has, without building the model or reading its weights
    (a weights file is hashed once and the hash cached). Raises UnknownBackboneError,
    WeightsNotFoundError."""
    spec = _spec(name, settings)
    return FAMILIES.get(spec.family).id_for(spec)


def weights_sha256(spec: BackboneSpec) -> Optional[str]:
    """Full sha256 of the spec's weights file; None for weights-free or random-init
    embedders. Raises WeightsNotFoundError when the file is not on this machine."""
    from .weights import file_sha256

    resolved = FAMILIES.get(spec.family).weights(spec)
    if resolved is None or resolved.path is None:
        return None
    import os

    st = os.stat(resolved.path)
    return file_sha256(resolved.path, st.st_size, st.st_mtime)


def embedder_provenance(name: Optional[str] = None, settings=None, embedder: Optional[Embedder] = None) -> dict:
    """The provenance record (see embedders.provenance) of backbone `name`, or of a built
    `embedder`. Raises UnknownBackboneError, WeightsNotFoundError."""
    spec = embedder.spec if embedder is not None else _spec(name, settings)
    eid = embedder.id if embedder is not None else FAMILIES.get(spec.family).id_for(spec)
    return make_provenance(spec, weights_sha256(spec), eid)


_CACHE: dict[tuple, Embedder] = {}


def get_embedder(name: Optional[str] = None, device: str = "auto", settings=None, cache: bool = True) -> Embedder:
    """The embedder of backbone `name` (default: settings.embed.backbone, else DEFAULT_BACKBONE).

    `device` is auto | cpu | cuda. With `settings`, text embeddings are cached under the
    workspace cache folder. Instances are memoised per (name, device, cache dir).
    Raises UnknownBackboneError, WeightsNotFoundError (weights missing offline).
    """
    spec = _spec(name, settings)
    dev = resolve_device(device)
    cache_dir = None
    if settings is not None:
        from ..workspace import Workspace

        cache_dir = Workspace.from_settings(settings).cache_dir
    key = (spec.name, repr(spec), dev, str(cache_dir))
    if cache and key in _CACHE:
        return _CACHE[key]
    embedder = FAMILIES.get(spec.family).build(spec, dev, cache_dir)
    logger.info("embedder %s on %s", embedder.id, embedder.device)
    if cache:
        _CACHE[key] = embedder
    return embedder


__all__ = ["DEFAULT_BACKBONE", "FAMILIES", "BackboneSpec", "Embedder", "EmbedderFamily", "UnknownBackboneError",
           "embedder_id_for", "embedder_provenance", "get_embedder", "get_spec", "list_backbones", "resolve_device",
           "weights_sha256"]
