"""Where releases live: the MLflow tracking/registry store, the experiment of publish runs,
the registered model, and the few tag names knnclip writes on versions (the rest of what
describes a release is its run's params/metrics and its `provenance.json`, see
registry.provenance)."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Optional

from knnclip_core.config import Settings, load_settings
from knnclip_core.errors import KnnclipError
from knnclip_core.workspace import Workspace

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

logger = logging.getLogger(__name__)

EXPERIMENT_NAME = "knnclip-releases"
TAG_PREFIX = "knnclip."
# Tags on each model version (all strings), kept for lookups by code.
TAG_EMBEDDER = "knnclip.embedder_id"
TAG_MANIFEST_SHA = "knnclip.manifest_sha256"
TAG_FINGERPRINT = "knnclip.content_fingerprint"  # what was published: embedder, rows, classes, index settings
TAG_LAYOUT = "knnclip.layout"  # "pyfunc": the source is an MLflow model, its snapshot in SNAPSHOT_IN_MODEL
SNAPSHOT_IN_MODEL = "artifacts/snapshot"


def snapshot_uri(mv) -> str:
    """Artifact URI of the snapshot files of model version `mv`: inside its pyfunc model
    (versions published since the pyfunc flavour), or the source itself (older versions)."""
    source = (mv.source or "").rstrip("/")
    return f"{source}/{SNAPSHOT_IN_MODEL}" if (mv.tags or {}).get(TAG_LAYOUT) == "pyfunc" else source
# Written by older versions only, still read as a fallback (now in the run and provenance.json).
TAG_VECTORS = "knnclip.vectors"
TAG_CLASSES = "knnclip.classes"
TAG_BACKBONE = "knnclip.backbone"
TAG_FACTORY = "knnclip.factory"
TAG_RECALL = "knnclip.recall_at_10"
TAG_CREATED = "knnclip.created"
TAG_LINEAGE = "knnclip.lineage"


class ReleaseNotFoundError(KnnclipError):
    """The named release (version or alias) does not exist in the registry."""


@dataclass
class RegistryContext:
    """An MLflow client bound to one store, plus the workspace and the model name."""

    client: MlflowClient
    tracking_uri: str
    model_name: str
    settings: Settings
    ws: Workspace
    artifact_location: Optional[str]
    command: str = "knnclip"  # the command using the registry, recorded when it finds an out-of-band alias move

    def experiment_id(self, name: str = EXPERIMENT_NAME) -> str:
        """Id of experiment `name` (default: the publish experiment), created on first use."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.artifact_location)
        except MlflowException:  # created meanwhile by another process
            return self.client.get_experiment_by_name(name).experiment_id

    def ensure_model(self) -> None:
        """Create the registered model if it does not exist yet."""
        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if not is_missing(exc):
                raise
            try:
                self.client.create_registered_model(
                    self.model_name, description="knnclip retrieval memory snapshots (FAISS index + labels)")
            except MlflowException:
                self.client.get_registered_model(self.model_name)

    def aliases(self) -> dict[str, int]:
        """alias -> version of the registered model ({} when the model does not exist)."""
        try:
            rm = self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if not is_missing(exc):
                raise
            return {}
        return {a: int(v) for a, v in (rm.aliases or {}).items()}

    def latest_version(self):
        """The newest ModelVersion of the model, or None when there is none."""
        try:
            versions = self.client.search_model_versions(f"name='{self.model_name}'")
        except MlflowException as exc:
            if not is_missing(exc):
                raise
            return None
        return max(versions, key=lambda mv: int(mv.version), default=None)

    def model_version(self, version: int):
        """The MLflow ModelVersion; raises ReleaseNotFoundError when absent."""
        try:
            return self.client.get_model_version(self.model_name, str(int(version)))
        except MlflowException as exc:
            if not is_missing(exc):
                raise
            raise ReleaseNotFoundError(f"release {version} of {self.model_name!r} does not exist "
                                       f"(see `knnclip releases list`)") from None


_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def check_alias(alias: Optional[str]) -> Optional[str]:
    """`alias` unchanged when MLflow accepts it as an alias name ('' and None: no alias);
    raises KnnclipError with the rule otherwise."""
    if not alias:
        return alias
    if not _ALIAS.match(alias) or alias.lower() == "latest" or _VERSION_LIKE.match(alias):
        raise KnnclipError(f"{alias!r} is not a valid alias name: use 1 to 255 letters, digits, '_' or '-', "
                           f"and neither 'latest' nor a version-like name such as 'v3'")
    return alias


def is_missing(exc: MlflowException) -> bool:
    """True when an MLflow error means 'no such entity'."""
    return getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def default_tracking_uri(ws: Workspace) -> str:
    """MLFLOW_TRACKING_URI when set, else SQLite in the workspace's mlflow folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}"


def refuse_foreign_artifacts(ws: Workspace, artifact_location: str) -> None:
    """Raise KnnclipError when the workspace's own MLflow store keeps the artifacts of knnclip's
    experiments in another folder: the workspace was copied (cp -a) from another one, and
    publishing here would write into, and read from, the original's artifacts."""
    import sqlite3

    db = ws.mlflow_dir / "mlflow.db"
    if not db.is_file():
        return
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:  # knnclip's experiments only
            rows = conn.execute("SELECT name, artifact_location FROM experiments WHERE name LIKE 'knnclip-%'").fetchall()
    except sqlite3.Error:
        return  # the store's own checks report an unreadable store
    for name, location in rows:
        if location and location.rstrip("/") != artifact_location.rstrip("/"):
            raise KnnclipError(
                f"this workspace's MLflow store {db} keeps the artifacts of experiment {name!r} in {location}, "
                f"not in {artifact_location}: the workspace was copied from another one (cp -a), so its releases "
                f"belong to that one; use the original workspace, or move {ws.mlflow_dir} aside to start this "
                "one with a registry of its own")


def open_registry(settings: Optional[Settings] = None, ws: Optional[Workspace] = None,
                  model_name: Optional[str] = None, command: str = "knnclip") -> RegistryContext:
    """Bind an MlflowClient to the configured store (default: SQLite + local artifacts in the
    workspace; any MLflow tracking URI through MLFLOW_TRACKING_URI). `command` names the
    caller in alias-history entries (e.g. 'releases list', 'dashboard')."""
    settings = settings or load_settings()
    ws = ws or Workspace.from_settings(settings).ensure()
    uri = default_tracking_uri(ws)
    artifact_location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        ws.mlflow_dir.mkdir(parents=True, exist_ok=True)
        artifact_location = (ws.mlflow_dir / "artifacts").resolve().as_uri()
    for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # first-use schema creation chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from .schema import ensure_sqlite_schema

    ensure_sqlite_schema(ws, uri)  # atomic, locked: a kill or a race cannot leave a half-made store
    if artifact_location is not None:
        refuse_foreign_artifacts(ws, artifact_location)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return RegistryContext(client, uri, model_name or settings.publish.model_name, settings, ws, artifact_location,
                           command)
