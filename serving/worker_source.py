"""MLflow-backed release source for the segmentation worker.

`RegistryReleaseSource(ref, settings)` is the callable `knnclip_core.serving.service.create_app`
polls: it resolves the alias (one cheap registry call), and when the alias points at another
version it downloads, verifies and loads that version, with the memory backbone named by
`worker.memory_backbone`, else the version's backbone tag (or found from the embedder id), and
the base model `worker.base_model` names. A version that failed is not
downloaded again until the alias moves; rollback is followed like any other move.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Optional

from knnclip_core.config import Settings, load_settings
from knnclip_core.errors import KnnclipError
from knnclip_core.segment.release import EmbedderCache, LoadedRelease, segmenter_for_snapshot
from knnclip_core.segment.segmenter import SegmentParams

from registry import store
from registry.aliases import check_aliases
from registry.load import load_release, parse_ref, resolve_ref
from registry.store import open_registry

logger = logging.getLogger(__name__)


class RegistryReleaseSource:
    """Release source over `ref` (alias, version, models:/name@alias, models:/name/N)."""

    def __init__(self, ref: str, settings: Optional[Settings] = None, params: Optional[SegmentParams] = None,
                 embedders: Optional[EmbedderCache] = None, backbone: Optional[str] = None):
        self.settings = settings or load_settings()
        self.ref = str(ref)
        self.params = params or SegmentParams.from_settings(self.settings)
        self.embedders = embedders or EmbedderCache(self.settings.embed.device, self.settings)
        self.backbone = backbone
        self.ctx = open_registry(self.settings, command="worker poll")
        self.model_name, _, self.alias = parse_ref(self.ref, self.ctx.model_name)
        self._failed: Optional[tuple[str, KnnclipError]] = None

    def current_version(self) -> str:
        """The version the reference points at now (string)."""
        return str(resolve_ref(self.ref, ctx=self.ctx))

    def __call__(self, known_version: Optional[str]) -> Optional[LoadedRelease]:
        version = self.current_version()
        if version == known_version:
            return None
        if self.alias:
            self._record_outside_moves()
        if self._failed and self._failed[0] == version:
            raise self._failed[1]
        try:
            release = load_release(f"models:/{self.model_name}/{version}", ctx=self.ctx)
            tags = self.ctx.model_version(int(version)).tags or {}  # versions before provenance.json: a tag
            backbone = (self.backbone or self.params.memory_backbone
                        or (release.snapshot.manifest.get("lineage") or {}).get("backbone") or tags.get(store.TAG_BACKBONE))
            seg = segmenter_for_snapshot(release.snapshot, self.params, self.embedders, backbone)
        except KnnclipError as exc:
            self._failed = (version, exc)
            raise
        return LoadedRelease(segmenter=seg, version=version, alias=self.alias, uri=release.uri)

    def _record_outside_moves(self) -> None:
        """On an alias change, record it in the history if it was made outside knnclip
        (registry.aliases.check_aliases); never stops a swap."""
        try:
            check_aliases(dataclasses.replace(self.ctx, model_name=self.model_name), [self.alias])
        except Exception as exc:  # noqa: BLE001 - recording is best effort for the worker
            logger.warning("could not check the history of alias %r: %s", self.alias, exc)


def load_segmenter(ref: str, settings: Optional[Settings] = None, params: Optional[SegmentParams] = None):
    """(Segmenter, LoadedRelease) for one-shot use (CLI segment/eval)."""
    source = RegistryReleaseSource(ref, settings, params)
    loaded = source(None)
    assert loaded is not None
    return loaded.segmenter, loaded
