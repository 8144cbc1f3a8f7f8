"""The "try it" page's work: segment one uploaded image with the release an alias points at,
and give back the overlay (as a data: URI) and the segment list.

Releases are loaded through serving.worker_source.RegistryReleaseSource, one per alias, and
kept while the alias does not move (loading verifies every checksum, so it is not redone on
each upload); embedders are shared between aliases.
"""
from __future__ import annotations

import base64
import logging
import threading
from typing import Optional

from PIL import Image as PILImage

from knnclip_core.classnames import display_name
from knnclip_core.config import Settings
from knnclip_core.errors import InputError, KnnclipError
from knnclip_core.segment.render import UNKNOWN_NAME, overlay_image, palette, png_bytes, unknown_mask
from knnclip_core.serving.upload_guard import UploadTooLarge, decode_upload

from knnclip_core.catalog.queries import segment_sources
from knnclip_core.workspace import Workspace

from .images import crops
from .releases_data import open_context

logger = logging.getLogger(__name__)

DISPLAY_MAX_SIDE = 1024  # longer side of the images shown on the page
MAX_NEIGHBOUR_CROPS = 5  # neighbours shown (as crops) per segment


class NoReleaseError(KnnclipError):
    """No release holds the alias yet."""


def colour_hex(rgb) -> str:
    """'#rrggbb' of an (r, g, b) triple."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


class TryService:
    """Segments uploads with the release of an alias; thread-safe, one load per alias move."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._sources: dict[str, object] = {}
        self._loaded: dict[str, object] = {}
        self._embedders = None
        self._lock = threading.Lock()

    def _release(self, alias: str):
        """The LoadedRelease `alias` points at now (loaded again only when the alias moved)."""
        ctx = open_context(self.settings)
        if alias.isdigit():
            if ctx is None or not _version_exists(ctx, alias):
                raise NoReleaseError(f"there is no release version {alias}: `knnclip releases list` shows them.")
        elif ctx is None or alias not in ctx.aliases():
            raise NoReleaseError(f"no release holds the alias {alias!r} yet: publish one with `knnclip publish` "
                                 f"and point the alias at it with `knnclip releases promote N --alias {alias}`.")
        from knnclip_core.segment.release import EmbedderCache

        from serving.worker_source import RegistryReleaseSource

        if self._embedders is None:
            self._embedders = EmbedderCache("cpu" if self.settings.embed.device == "auto" else self.settings.embed.device,
                                            self.settings)
        source = self._sources.get(alias)
        if source is None:
            source = self._sources[alias] = RegistryReleaseSource(alias, self.settings, embedders=self._embedders)
        known = self._loaded.get(alias)
        fresh = source(known.version if known is not None else None)
        if fresh is not None:
            self._loaded[alias] = fresh
        return self._loaded[alias]

    def segment(self, data: bytes, alias: str = "production") -> dict:
        """Segment the encoded image `data` with the release of `alias`.

        Returns {'release': {version, alias, uri, vocabulary_size, embedder_id}, 'width', 'height',
        'scale' (the upload was decoded at this scale: worker.max_side, as the worker does),
        'overlay': data URI of the colour overlay PNG (unknown segments hatched grey), 'image': data URI of the
        upload as PNG, 'classes': [{name, colour, pixels}] of the classes found (then `unknown`, hatched), 'segments': [{id, class, colour, score, confidence, fused, area, bbox}]}.
        Raises InputError (not an image, too large), NoReleaseError, KnnclipError (load failed)."""
        wcfg = self.settings.worker
        max_bytes = int(wcfg.max_upload_mb * 1024 * 1024)
        if not data:
            raise InputError("choose an image file to upload first.")
        if len(data) > max_bytes:
            raise UploadTooLarge(f"the upload is larger than {wcfg.max_upload_mb} MB.")
        pixels, scale = decode_upload(data, wcfg.max_pixels, wcfg.max_side)  # as the worker: big photos at reduced scale
        with self._lock:
            rel = self._release(alias)
            result = rel.segmenter.segment(pixels)
        n = len(result.classes)
        colours = palette(n)
        unknown = unknown_mask(result)  # hatched grey in the overlay, a row of the classes found
        overlay = _display_png(overlay_image(pixels, result.label_map, n, unknown=unknown))
        original = _display_png(PILImage.fromarray(pixels))
        body = result.to_json(segment_ids=getattr(rel.segmenter.memory, "segment_ids", None), top=3)
        segments = []
        for seg in body["segments"]:
            idx = seg["class_index"]
            segments.append({"id": seg["id"], "class": display_name(seg["class"]), "score": seg["score"],
                             "confidence": seg["confidence"], "fused": seg["fused"], "area": seg["area"],
                             "bbox": seg["bbox"], "top_scores": seg["scores"],
                             "colour": colour_hex(colours[idx]) if idx >= 0 else UNKNOWN_SWATCH,
                             "neighbours": [{"segment_id": p["segment_id"], "similarity": p["similarity"]}
                                            for p in seg.get("provenance") or []][:MAX_NEIGHBOUR_CROPS]})
        _add_neighbour_crops(segments, self.settings)
        pixels_per_class: dict[int, int] = {}
        for value, count in zip(*_bincount(result.label_map)):
            pixels_per_class[value] = count
        found = [{"name": display_name(result.classes[i]), "colour": colour_hex(colours[i]), "pixels": pixels_per_class[i]}
                 for i in sorted(pixels_per_class, key=lambda j: -pixels_per_class[j]) if i >= 0]
        if unknown.any():
            found.append({"name": UNKNOWN_NAME, "colour": UNKNOWN_SWATCH, "pixels": int(unknown.sum()), "unknown": True})
        return {"release": rel.describe(), "width": body["width"], "height": body["height"], "scale": scale,
                "overlay": "data:image/png;base64," + base64.b64encode(overlay).decode(),
                "image": "data:image/png;base64," + base64.b64encode(original).decode(),
                "classes": found, "segments": segments, "timings": body["timings"]}


UNKNOWN_SWATCH = "repeating-linear-gradient(45deg, #323232 0 2px, #969696 2px 6px)"  # CSS: as the overlay hatches


def _version_exists(ctx, version: str) -> bool:
    from registry.store import ReleaseNotFoundError

    try:
        ctx.model_version(int(version))
        return True
    except ReleaseNotFoundError:
        return False


def _add_neighbour_crops(segments: list, settings: Settings) -> None:
    """Give each neighbour of `segments` its catalog 'class' and 'crop' (data URI, or None when the
    catalog does not know the segment or its image cannot be read)."""
    ids = [n["segment_id"] for s in segments for n in s["neighbours"] if n["segment_id"]]
    sources = segment_sources(Workspace.from_settings(settings).catalog_url, ids)
    uris = crops(sources, ids, settings.ingest.max_pixels)
    for s in segments:
        for n in s["neighbours"]:
            src = sources.get(n["segment_id"] or "")
            n["class"] = display_name(src["class"]) if src else None
            n["crop"] = uris.get(n["segment_id"] or "")


def _display_png(im, max_side: int = DISPLAY_MAX_SIDE) -> bytes:
    """PNG of `im` shrunk to at most `max_side` pixels on its longer side (pages stay light)."""
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side))
    return png_bytes(im)


def _bincount(label_map) -> tuple[list[int], list[int]]:
    """(values, counts) of a label map, unknown (-1) included."""
    import numpy as np

    values, counts = np.unique(label_map, return_counts=True)
    return [int(v) for v in values], [int(c) for c in counts]


def release_versions(settings: Settings) -> list[int]:
    """Registered versions, newest first ([] without a registry or on error)."""
    try:
        ctx = open_context(settings)
        if ctx is None:
            return []
        versions = ctx.client.search_model_versions(f"name = '{ctx.model_name}'")
        return sorted((int(mv.version) for mv in versions), reverse=True)
    except Exception:  # noqa: BLE001 - the page offers the aliases only
        logger.exception("registry unreadable")
        return []


def alias_choices(aliases: Optional[dict] = None) -> list[str]:
    """Aliases to offer: production, staging, then any other alias in `aliases` (alias -> version)."""
    names = ["production", "staging"]
    for alias in (aliases or {}):
        if alias not in names:
            names.append(alias)
    return names
