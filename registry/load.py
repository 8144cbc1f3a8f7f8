"""Load a release for serving: resolve a reference (alias, version, `models:/name@alias`,
`models:/name/N`), download its snapshot into the workspace cache, verify every checksum
(and the manifest against the sha256 recorded on the version) and the embedder id, and
return a ready searcher."""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import mlflow

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError, VerificationError
from knnclip_core.hashing import sha256_file
from knnclip_core.index import Snapshot, load_snapshot
from knnclip_core.index.snapshot import MANIFEST_FILE

from . import store
from .store import RegistryContext, ReleaseNotFoundError, open_registry

logger = logging.getLogger(__name__)

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")


@dataclass
class Release:
    """A verified release: the snapshot searcher, its version, the alias it was reached by."""

    snapshot: Snapshot
    version: int
    alias: Optional[str]
    uri: str
    model_name: str = ""

    def describe(self) -> dict:
        """JSON-ready identity of the release."""
        m = self.snapshot.manifest
        return {"version": self.version, "alias": self.alias, "uri": self.uri, "model_name": self.model_name,
                "vectors": m["vectors"], "classes": m["classes"], "embedder_id": m["embedder_id"],
                "factory": m["factory"]}


def parse_ref(ref: str | int, default_model: str) -> tuple[str, Optional[int], Optional[str]]:
    """(model name, version or None, alias or None) of a release reference.
    Raises KnnclipError for a `models:/` URI that is not name@alias or name/N."""
    text = str(ref).strip()
    if text.startswith("models:/"):
        m = _MODELS_URI.match(text)
        if not m:
            raise KnnclipError(f"cannot read release reference {text!r}; use models:/NAME@ALIAS or models:/NAME/VERSION")
        return m["name"], (int(m["version"]) if m["version"] else None), m["alias"]
    if text.lstrip("v").isdigit():
        return default_model, int(text.lstrip("v")), None
    return default_model, None, text


def _context(settings: Optional[Settings], model_name: Optional[str], ctx: Optional[RegistryContext]) -> RegistryContext:
    if ctx is not None and (model_name is None or model_name == ctx.model_name):
        return ctx
    base = ctx or open_registry(settings)
    return RegistryContext(base.client, base.tracking_uri, model_name or base.model_name, base.settings, base.ws,
                           base.artifact_location, base.command)


def resolve_ref(ref: str | int, settings: Optional[Settings] = None, ctx: Optional[RegistryContext] = None) -> int:
    """Version number a reference points at now (cheap: one registry call).
    Raises ReleaseNotFoundError when the alias or version does not exist."""
    base = ctx or open_registry(settings)
    name, version, alias = parse_ref(ref, base.model_name)
    ctx = _context(settings, name, base)
    if version is not None:
        ctx.model_version(version)
        return version
    holder = ctx.aliases().get(alias)
    if holder is None:
        raise ReleaseNotFoundError(f"alias {alias!r} of {name!r} points at no release "
                                   f"(see `knnclip releases list`)")
    return holder


def _download(ctx: RegistryContext, version: int, dst: Path) -> None:
    """Download the snapshot of `version` into `dst` (replaced atomically)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        # The version's own source URI, not models:/ (whose resolver uses the global registry URI).
        source = store.snapshot_uri(ctx.model_version(version))
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp),
                                                    tracking_uri=ctx.tracking_uri)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(local, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verified(ctx: RegistryContext, version: int, path: Path, embedder_id: Optional[str]) -> Snapshot:
    """The snapshot at `path`, verified: its manifest against the sha256 recorded on the
    version (when recorded), every file against the manifest, the embedder id. Raises
    VerificationError (no manifest, or any mismatch), EmbedderMismatchError."""
    if not (path / MANIFEST_FILE).is_file():
        raise VerificationError(f"release {version} has no {MANIFEST_FILE}, so its files cannot be verified; "
                                f"it is not loaded")
    expected = (ctx.model_version(version).tags or {}).get(store.TAG_MANIFEST_SHA)
    if not expected:
        logger.warning("release %s records no manifest checksum; its files are verified against its manifest only",
                       version)
    elif sha256_file(path / MANIFEST_FILE) != expected:
        raise VerificationError(f"{MANIFEST_FILE} of release {version} does not match the checksum "
                                f"recorded in the registry (changed or corrupted)")
    return load_snapshot(path, expected_embedder_id=embedder_id)


def _discard(path: Path) -> None:
    """Remove a cached copy that failed verification (it must never be served)."""
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise VerificationError(f"could not remove the unverified copy {path}; delete it by hand")


def cache_path(ctx: RegistryContext, version: int) -> Path:
    """Where the snapshot of `version` is cached in the workspace."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", ctx.model_name)
    return ctx.ws.cache_dir / "releases" / safe / f"v{int(version)}"


def load_release(ref: str | int, settings: Optional[Settings] = None, embedder_id: Optional[str] = None,
                 ctx: Optional[RegistryContext] = None) -> Release:
    """Resolve, download (cached under ws.cache_dir), verify and load a release.

    `embedder_id`: the id of the embedder the caller will query with; a release built with
    another raises EmbedderMismatchError. A changed, missing or extra file raises
    VerificationError (a bad cached copy is removed and downloaded again once; a download
    that fails verification is removed from the cache too, never kept)."""
    base = ctx or open_registry(settings)
    name, _, alias = parse_ref(ref, base.model_name)
    ctx = _context(settings, name, base)
    version = resolve_ref(ref, ctx=ctx)
    path = cache_path(ctx, version)
    if path.is_dir():
        try:
            snap = _verified(ctx, version, path, embedder_id)
            return Release(snap, version, alias, f"models:/{name}/{version}", name)
        except VerificationError as exc:
            logger.warning("cached release %s failed verification (%s); downloading it again", version, exc)
            _discard(path)
    _download(ctx, version, path)
    try:
        snap = _verified(ctx, version, path, embedder_id)
    except VerificationError:
        _discard(path)
        raise
    logger.info("loaded release %s of %s (%s)", version, name, snap)
    return Release(snap, version, alias, f"models:/{name}/{version}", name)
