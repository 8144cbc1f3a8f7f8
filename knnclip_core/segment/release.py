"""What the worker serves: a loaded, verified release (segmenter + identity), and the
release sources the service polls.

A release source is a callable `source(known_version) -> LoadedRelease | None`: it returns
None while the release it points at is still `known_version`, otherwise it loads and
verifies the new one (raising a KnnclipError when that fails). The MLflow-backed source
lives in serving/worker_source.py; `LocalSnapshotSource` serves a snapshot folder (or a
symlink to one, which is how a local "alias" is moved) without any registry.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import EmbedderMismatchError, KnnclipError
from .base_models import build_base_model
from .segmenter import Segmenter, SegmentParams

logger = logging.getLogger(__name__)


@dataclass
class LoadedRelease:
    """A release ready to serve."""

    segmenter: Segmenter
    version: str
    alias: Optional[str] = None
    uri: str = ""
    loaded_at: float = field(default_factory=time.time)

    @property
    def vocabulary_size(self) -> int:
        return len(self.segmenter.vocabulary)

    @property
    def embedder_id(self) -> str:
        return self.segmenter.embedder.id

    @property
    def base_model_id(self) -> str:
        return self.segmenter.base_model.id

    def describe(self) -> dict:
        """JSON-ready identity of the release: the memory backbone's embedder id (the release
        records it), the base model the worker pairs it with, and the confidence threshold T in
        force with where it came from (segment.calibrate.resolve_threshold)."""
        return {"version": self.version, "alias": self.alias, "uri": self.uri,
                "vocabulary_size": self.vocabulary_size, "embedder_id": self.embedder_id,
                "base_model_id": self.base_model_id, "loaded_at": self.loaded_at,
                "confidence_threshold": self.segmenter.threshold, "threshold_source": self.segmenter.threshold_source}


ReleaseSource = Callable[[Optional[str]], Optional[LoadedRelease]]


def backbone_for_snapshot(snapshot, backbone: Optional[str] = None) -> str:
    """Name of the backbone that reproduces the snapshot's embedder: `backbone` when given,
    else the configs/backbones.yaml entry whose spec matches the manifest's provenance record
    field by field and whose weights checksum is the recorded one (the recorded name first
    among equals). A snapshot written before provenance was recorded falls back to its
    lineage's backbone name. Raises EmbedderMismatchError when nothing fits,
    WeightsNotFoundError when a candidate's weights are missing."""
    if backbone:
        return backbone
    manifest = getattr(snapshot, "manifest", {}) or {}
    record = manifest.get("provenance")
    if record is None:
        named = (manifest.get("lineage") or {}).get("backbone") or manifest.get("backbone")
        if named:
            return str(named)
        raise EmbedderMismatchError(f"snapshot {getattr(snapshot, 'path', '')} records neither a provenance nor a "
                                    f"backbone (written by an older knnclip), so name its backbone explicitly.")
    from ..embedders import list_backbones, weights_sha256
    from ..embedders.provenance import same_spec

    recorded_name = record["backbone"].get("name")
    candidates = sorted((s for s in list_backbones() if same_spec(record, s)), key=lambda s: s.name != recorded_name)
    for spec in candidates:
        if weights_sha256(spec) == record.get("weights_sha256"):
            return spec.name
    raise EmbedderMismatchError(f"no configured backbone reproduces the release's embedder {snapshot.embedder_id!r} "
                                f"(spec of {recorded_name!r} with weights sha256 {record.get('weights_sha256')}).")


class EmbedderCache:
    """Keeps loaded embedders by backbone name, so a new release of the same backbone is cheap."""

    def __init__(self, device: str = "auto", settings=None):
        self.device = device
        self.settings = settings
        self._items: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, backbone: str):
        """The embedder named `backbone` (loaded once)."""
        with self._lock:
            if backbone not in self._items:
                from ..embedders import get_embedder

                self._items[backbone] = get_embedder(backbone, device=self.device, settings=self.settings)
            return self._items[backbone]


def segmenter_for_snapshot(snapshot, params: SegmentParams, embedders: EmbedderCache,
                           backbone: Optional[str] = None) -> Segmenter:
    """A Segmenter over `snapshot` with the embedder that reproduces it (`backbone`, else
    params.memory_backbone, else the one the snapshot records) and the base model
    `params.base_model` names (its backbone loaded through the same cache).

    Raises EmbedderMismatchError when the backbone's embedder id differs from the snapshot's."""
    embedder = embedders.get(backbone_for_snapshot(snapshot, backbone or params.memory_backbone))
    manifest = getattr(snapshot, "manifest", {}) or {}
    things = manifest.get("thing_classes") or (manifest.get("lineage") or {}).get("thing_classes")
    base = build_base_model(params.base_model, embedder, embedders.get)
    seg = Segmenter(embedder, snapshot, params, thing_classes=things, base_model=base)
    seg.warm_up()
    return seg


class LocalSnapshotSource:
    """Release source over a snapshot folder or a symlink to one (version = the folder name the
    path resolves to). A version that failed to load is not retried until the path moves."""

    def __init__(self, path: str | os.PathLike, params: SegmentParams, embedders: EmbedderCache,
                 alias: Optional[str] = None, backbone: Optional[str] = None):
        self.path = Path(path)
        self.params = params
        self.embedders = embedders
        self.alias = alias or self.path.name
        self.backbone = backbone
        self._failed: Optional[tuple[str, KnnclipError]] = None

    def __call__(self, known_version: Optional[str]) -> Optional[LoadedRelease]:
        from ..index import load_snapshot

        target = Path(os.path.realpath(self.path))
        version = target.name
        if version == known_version:
            return None
        if self._failed and self._failed[0] == version:
            raise self._failed[1]
        try:
            snapshot = load_snapshot(target)
            seg = segmenter_for_snapshot(snapshot, self.params, self.embedders, self.backbone)
        except KnnclipError as exc:
            self._failed = (version, exc)
            raise
        return LoadedRelease(segmenter=seg, version=version, alias=self.alias, uri=str(target))
