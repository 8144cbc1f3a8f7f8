"""Publish: a snapshot folder becomes an MLflow run (params, metrics, the snapshot and the
curation/validation reports as artifacts) and a new version of the registered model,
tagged with its counts, embedder and lineage; the publish alias (staging) moves to it."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from mlflow.entities import Metric, Param

from knnclip_core.catalog.liveness import STALE_AFTER_S, owner_alive, owner_identity
from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError
from knnclip_core.hashing import sha256_file
from knnclip_core.index import build_snapshot, verify_snapshot
from knnclip_core.index.snapshot import MANIFEST_FILE
from knnclip_core.workspace import Workspace

from . import store
from .aliases import move_alias
from .store import RegistryContext, check_alias, open_registry

logger = logging.getLogger(__name__)

SNAPSHOT_ARTIFACT = "snapshot"
TAG_HOST, TAG_PID, TAG_PID_STARTED = "knnclip.host", "knnclip.pid", "knnclip.pid_started"  # who runs a publish
REPORT_WORDS = ("curat", "valid", "ingest")
REPORT_SUFFIXES = (".json", ".md", ".html", ".csv", ".txt")


def find_reports(reports_dir: Path) -> list[Path]:
    """The newest curation and validation report files at the top of `reports_dir`."""
    if not reports_dir.is_dir():
        return []
    found = []
    for word in REPORT_WORDS:
        files = [p for p in reports_dir.iterdir()
                 if p.is_file() and word in p.name.lower() and p.suffix.lower() in REPORT_SUFFIXES]
        if files:
            found.append(max(files, key=lambda p: p.stat().st_mtime))
    return found


def publish_snapshot(ctx: RegistryContext, snapshot_dir: str | Path, alias: Optional[str] = None,
                     reports: Sequence[Path] = (), backbone: Optional[str] = None,
                     fingerprint: Optional[str] = None) -> dict:
    """Register a verified snapshot folder as a new version of `ctx.model_name`.

    Returns {'version', 'model_name', 'uri', 'run_id', 'alias', 'previous', 'vectors',
    'classes', 'factory', 'recall_at_10', 'embedder_id'}. Raises VerificationError when the
    folder does not verify."""
    snapshot_dir = Path(snapshot_dir)
    manifest = verify_snapshot(snapshot_dir)
    alias = check_alias(alias if alias is not None else ctx.settings.publish.alias)
    client = ctx.client
    lineage = manifest.get("lineage") or {}
    fail_interrupted_runs(ctx)
    owner = owner_identity()
    run = client.create_run(ctx.experiment_id(), run_name=f"publish-{manifest['created']}",
                            tags={"knnclip.kind": "publish", TAG_HOST: owner["host"], TAG_PID: str(owner["pid"]),
                                  TAG_PID_STARTED: repr(owner["pid_started"])})
    run_id = run.info.run_id
    try:
        params = {"embedder_id": manifest["embedder_id"], "dim": manifest["dim"], "metric": manifest["metric"],
                  "factory": manifest["factory"], "search_params": json.dumps(manifest["search_params"]),
                  "byte_budget": manifest["build"].get("byte_budget"), "recall_floor": manifest["build"]["recall_floor"],
                  "nlist": manifest["build"].get("nlist"), "chosen_by": manifest["build"]["chosen_by"],
                  "lance_version": lineage.get("lance_version"), "lance_tag": lineage.get("lance_tag"),
                  "backbone": backbone or lineage.get("backbone")}
        metrics = {"vectors": manifest["vectors"], "classes": manifest["classes"],
                   "recall_at_10": manifest["recall_at_10"], "index_bytes": manifest["bytes"]["index"],
                   "bytes_ratio_to_flat": manifest["bytes"]["ratio_to_flat"],
                   "build_seconds": manifest["build"]["build_seconds"]}
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                         metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        client.log_artifacts(run_id, str(snapshot_dir), artifact_path=SNAPSHOT_ARTIFACT)
        for report in reports:
            client.log_artifact(run_id, str(report), artifact_path="reports")
        ctx.ensure_model()
        tags = {store.TAG_VECTORS: manifest["vectors"], store.TAG_CLASSES: manifest["classes"],
                store.TAG_EMBEDDER: manifest["embedder_id"], store.TAG_FACTORY: manifest["factory"],
                store.TAG_RECALL: manifest["recall_at_10"], store.TAG_CREATED: manifest["created"],
                store.TAG_MANIFEST_SHA: sha256_file(snapshot_dir / MANIFEST_FILE),
                store.TAG_LINEAGE: json.dumps(lineage, sort_keys=True, default=str)[:50_000]}
        if backbone or lineage.get("backbone"):
            tags[store.TAG_BACKBONE] = backbone or lineage.get("backbone")
        if fingerprint:
            tags[store.TAG_FINGERPRINT] = fingerprint
        mv = client.create_model_version(ctx.model_name, source=f"{run.info.artifact_uri}/{SNAPSHOT_ARTIFACT}",
                                         run_id=run_id, tags={k: str(v) for k, v in tags.items()},
                                         description=f"{manifest['vectors']} vectors, {manifest['classes']} classes, "
                                                     f"{manifest['factory']}")
        version = int(mv.version)
        client.set_tag(run_id, "knnclip.model_version", str(version))
        moved = move_alias(ctx, alias, version, action="publish") if alias else {"previous": None}
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    logger.info("published %s version %d (%s)", ctx.model_name, version, manifest["factory"])
    return {"version": version, "model_name": ctx.model_name, "uri": f"models:/{ctx.model_name}/{version}",
            "run_id": run_id, "alias": alias or None, "previous": moved["previous"], "reused": False,
            "vectors": manifest["vectors"], "classes": manifest["classes"], "factory": manifest["factory"],
            "recall_at_10": manifest["recall_at_10"], "embedder_id": manifest["embedder_id"],
            "bytes": manifest["bytes"]["index"]}


def fail_interrupted_runs(ctx: RegistryContext) -> list[str]:
    """Mark FAILED the publish runs left RUNNING by a killed publish (its process is gone from
    this host, or it is older than STALE_AFTER_S when that cannot be told). Returns their ids."""
    exp = ctx.client.get_experiment_by_name(store.EXPERIMENT_NAME)
    if exp is None:
        return []
    old_ms = (time.time() - STALE_AFTER_S) * 1000
    failed = []
    for run in ctx.client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        t = run.data.tags
        alive = owner_alive(t.get(TAG_HOST), _int_or_none(t.get(TAG_PID)), _float_or_none(t.get(TAG_PID_STARTED)))
        if alive or (alive is None and run.info.start_time > old_ms):
            continue
        ctx.client.set_tag(run.info.run_id, "knnclip.failure", "interrupted: the publishing process ended "
                                                               "without finishing (marked by a later publish)")
        ctx.client.set_terminated(run.info.run_id, "FAILED")
        failed.append(run.info.run_id)
        logger.warning("publish run %s was interrupted (its process is gone); marked FAILED", run.info.run_id)
    return failed


def _int_or_none(v) -> Optional[int]:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float_or_none(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def content_fingerprint(embedder_id: str, ids: Sequence[str], class_names: Sequence[str], build: dict) -> str:
    """sha256 of what a release holds: embedder, (segment id, class) rows, index settings."""
    h = hashlib.sha256(json.dumps({"embedder": embedder_id, "build": build}, sort_keys=True).encode())
    for sid, name in sorted(zip(map(str, ids), map(str, class_names))):
        h.update(f"{sid}\0{name}\n".encode())
    return h.hexdigest()


def reuse_latest(ctx: RegistryContext, fingerprint: str, alias: Optional[str]) -> Optional[dict]:
    """The newest version when it already holds exactly this content (alias moved to it if
    needed), else None: publishing an unchanged memory twice gives one release."""
    mv = ctx.latest_version()
    if mv is None or (mv.tags or {}).get(store.TAG_FINGERPRINT) != fingerprint:
        return None
    version = int(mv.version)
    previous = ctx.aliases().get(alias) if alias else None
    if alias and previous != version:
        move_alias(ctx, alias, version, action="publish")
    t = mv.tags or {}
    return {"version": version, "model_name": ctx.model_name, "uri": f"models:/{ctx.model_name}/{version}",
            "run_id": mv.run_id, "alias": alias or None, "previous": previous, "reused": True,
            "vectors": int(t.get(store.TAG_VECTORS, 0)), "classes": int(t.get(store.TAG_CLASSES, 0)),
            "factory": t.get(store.TAG_FACTORY), "recall_at_10": float(t.get(store.TAG_RECALL, "nan")),
            "embedder_id": t.get(store.TAG_EMBEDDER)}


def thing_classes(ws: Workspace, vocabulary: set[str]) -> list[str]:
    """Classes of `vocabulary` the catalog knows as things (instances in panoptic output)."""
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, session_scope

    with session_scope(ws.catalog_url) as s:
        rows = s.exec(select(ClassName.name).where(ClassName.is_thing == True)).all()  # noqa: E712
    return sorted(set(rows) & vocabulary)


def publish(settings: Settings, ws: Workspace, backbone: Optional[str] = None, alias: Optional[str] = None,
            index: Optional[str] = None, tag: Optional[str] = None) -> dict:
    """Build a snapshot from the KEPT rows of the memory of `backbone` (default: the only
    memory, or with several the one of settings.embed.backbone) and publish it (see `publish_snapshot`). `index` overrides the
    index choice (FAISS factory string); the byte budget is settings.curate.budget_mb.
    When the newest release already holds the same content, it is returned (`reused`)
    instead of a duplicate version. Raises RecallFloorError, KnnclipError when the memory
    is empty, InputError when no memory matches."""
    from knnclip_core.memory.published import load_kept
    from knnclip_core.memory.resolve import resolve_embedder_id

    alias = check_alias(alias if alias is not None else settings.publish.alias)
    embedder_id = resolve_embedder_id(ws, backbone, configured=settings.embed.backbone)
    try:
        kept = load_kept(ws, embedder_id, tag=tag)
    except FileNotFoundError as exc:
        raise KnnclipError(f"there is nothing to publish: {exc}") from None
    backbone = (kept.provenance or {}).get("backbone", {}).get("name") or backbone or settings.embed.backbone
    if len(kept.ids) == 0:
        raise KnnclipError(f"the memory of backbone {backbone!r} has no kept rows; run `knnclip curate` first")
    lineage = {"backbone": backbone, "lance_version": kept.lance_version, "lance_tag": kept.lance_tag,
               "batches": sorted(set(map(str, kept.batch_ids))), "datasets": sorted(set(map(str, kept.datasets)))}
    budget = int(settings.curate.budget_mb * 1_000_000) if settings.curate.budget_mb else None
    names = list(kept.class_names)  # one per row
    lineage["thing_classes"] = thing_classes(ws, set(names))
    factory = index or settings.publish.index
    fingerprint = content_fingerprint(embedder_id, kept.ids, names, {"factory": factory, "byte_budget": budget,
                                                                     "recall_floor": settings.publish.recall_floor})
    ctx = open_registry(settings, ws)
    reused = reuse_latest(ctx, fingerprint, alias)
    if reused is not None:
        logger.info("memory unchanged since version %d: no new release", reused["version"])
        return reused
    work = Path(tempfile.mkdtemp(prefix="publish-", dir=ws.cache_dir))
    try:
        build_snapshot(work / "snapshot", kept.vectors, list(kept.ids), names, embedder_id,
                       lineage=lineage, factory=factory, byte_budget=budget,
                       recall_floor=settings.publish.recall_floor, provenance=kept.provenance)
        return publish_snapshot(ctx, work / "snapshot", alias=alias, reports=find_reports(ws.reports_dir),
                                backbone=backbone, fingerprint=fingerprint)
    finally:
        shutil.rmtree(work, ignore_errors=True)
