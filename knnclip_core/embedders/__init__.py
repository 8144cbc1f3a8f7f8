"""Embedders: turn segments (image + mask) into L2-normalised vectors.

`get_embedder(name, device="auto", settings=None)` builds the backbone named in
configs/backbones.yaml; `embedder_id_for(name)` gives its id without building it;
`list_backbones()` lists them. Families are plug-ins of the
`FAMILIES` registry (open_clip, dinov2, classic).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

from ..plugins import Registry
from .backbones import BackboneSpec, UnknownBackboneError, get_spec, list_backbones
from .base import Embedder, resolve_device

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "classic"

# family name -> factory(spec, device, cache_dir) -> Embedder
FAMILIES: Registry[Callable[..., Embedder]] = Registry("embedder family")


@FAMILIES.register("classic")
def _classic(spec: BackboneSpec, device: str, cache_dir) -> Embedder:
    from .classic import ClassicEmbedder

    return ClassicEmbedder(spec, device="cpu")  # numpy/scipy features; no gain from a GPU


@FAMILIES.register("open_clip")
def _open_clip(spec: BackboneSpec, device: str, cache_dir) -> Embedder:
    from .open_clip_family import OpenClipEmbedder

    return OpenClipEmbedder(spec, device=device, cache_dir=cache_dir)


@FAMILIES.register("dinov2")
def _dinov2(spec: BackboneSpec, device: str, cache_dir) -> Embedder:
    from .dinov2 import Dinov2Embedder

    return Dinov2Embedder(spec, device=device)


# family name -> id_for(spec) -> the embedder id, without loading weights
FAMILY_IDS: Registry[Callable[[BackboneSpec], str]] = Registry("embedder family id")


@FAMILY_IDS.register("classic")
def _classic_id(spec: BackboneSpec) -> str:
    from .classic import ClassicEmbedder

    return ClassicEmbedder.id_for(spec)


@FAMILY_IDS.register("open_clip")
def _open_clip_id(spec: BackboneSpec) -> str:
    from .open_clip_family import OpenClipEmbedder

    return OpenClipEmbedder.id_for(spec)


@FAMILY_IDS.register("dinov2")
def _dinov2_id(spec: BackboneSpec) -> str:
    from .dinov2 import Dinov2Embedder

    return Dinov2Embedder.id_for(spec)


def _spec(name: Optional[str], settings) -> BackboneSpec:
    """The spec of backbone `name` (default: settings.embed.backbone, else `classic`)."""
    if name is None:
        name = settings.embed.backbone if settings is not None else DEFAULT_BACKBONE
    return get_spec(name)


def embedder_id_for(name: Optional[str] = None, settings=None) -> str:
    """The id `get_embedder(name)` has, without building the model or reading its weights
    (a weights file is hashed once and the hash cached). Raises UnknownBackboneError,
    WeightsNotFoundError."""
    spec = _spec(name, settings)
    return FAMILY_IDS.get(spec.family)(spec)


_CACHE: dict[tuple, Embedder] = {}


def get_embedder(name: Optional[str] = None, device: str = "auto", settings=None, cache: bool = True) -> Embedder:
    """The embedder of backbone `name` (default: settings.embed.backbone, else `classic`).

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
    embedder = FAMILIES.get(spec.family)(spec, dev, cache_dir)
    logger.info("embedder %s on %s", embedder.id, embedder.device)
    if cache:
        _CACHE[key] = embedder
    return embedder


__all__ = ["DEFAULT_BACKBONE", "FAMILIES", "FAMILY_IDS", "BackboneSpec", "Embedder", "UnknownBackboneError",
           "embedder_id_for", "get_embedder", "get_spec", "list_backbones", "resolve_device"]
