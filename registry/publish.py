"""Publish: a snapshot folder becomes an MLflow run (params, metrics, the snapshot, the
curation/validation reports and `provenance.json` as artifacts, one dataset input per source
batch) and a new version of the registered model with a markdown description (see
registry.describe) and three lookup tags (embedder id, manifest sha256, content
fingerprint); the publish alias (staging) moves to it."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from mlflow.entities import Metric, Param

from knnclip_core.catalog.liveness import STALE_AFTER_S, owner_alive, owner_identity
from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError
from knnclip_core.hashing import sha256_file
from knnclip_core.index import build_snapshot, verify_snapshot
from knnclip_core.index.snapshot import MANIFEST_FILE
from knnclip_core.locks import workspace_lock
from knnclip_core.redact import redact_obj, redact_text
from knnclip_core.workspace import Workspace

from . import store
from .aliases import move_alias
from .describe import change_lines, changes, describe, previous_parts, row_changes, segment_ids_of
from .provenance import dataset_inputs, log_provenance, provenance_record, release_facts
from .store import RegistryContext, check_alias, open_registry

logger = logging.getLogger(__name__)

SNAPSHOT_ARTIFACT = "snapshot"  # where versions before the pyfunc flavour kept their snapshot
MODEL_ARTIFACT = "model"  # the version's MLflow model (pyfunc, from code), the snapshot inside it
TAG_HOST, TAG_PID, TAG_PID_STARTED = "knnclip.host", "knnclip.pid", "knnclip.pid_started"  # who runs a publish
REPORT_WORDS = ("curat", "valid", "ingest")
REPORT_SUFFIXES = (".json", ".md", ".html", ".csv", ".txt")
PUBLISH_LOCK_TIMEOUT_S = 900.0  # a publisher waits this long for another one building a release


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no bytes copied) where the file system allows one, else a copy."""
    import os

    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_pyfunc(model_dir: Path, snapshot_dir: Path, settings: Settings) -> Path:
    """Write the release as an MLflow pyfunc model at `model_dir` (registry/pyfunc_model.py as
    models-from-code: no pickle), the snapshot as its artifact `snapshot`, a signature (image
    bytes in; classes, segments, label map out) and the worker's inference knobs as its config."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    w = settings.worker
    config = {"k": w.k, "temperature": w.temperature, "confidence": w.confidence, "fusion_lambda": w.fusion_lambda,
              "confidence_threshold": w.confidence_threshold, "fallback_threshold": w.fallback_threshold,
              "proposals": w.proposals, "proposal_options": dict(w.proposal_options or {}),
              "merge_rounds": w.merge_rounds, "merge_scope": w.merge_scope, "merge_smoothing": w.merge_smoothing,
              "panoptic": dict(w.panoptic or {})}
    signature = ModelSignature(inputs=Schema([ColSpec("binary", "image")]),
                               outputs=Schema([ColSpec("string", "classes"), ColSpec("string", "segments"),
                                               ColSpec("binary", "label_map_png")]))
    named = model_dir.parent / "snapshot-link" / "snapshot"  # MLflow keeps the folder's name: store.SNAPSHOT_IN_MODEL
    shutil.copytree(snapshot_dir, named, copy_function=_link_or_copy)
    with warnings.catch_warnings():  # its advice on type hints and input examples: the signature is explicit
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.save_model(str(model_dir), python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                                 artifacts={"snapshot": str(named)}, signature=signature, model_config=config,
                                 pip_requirements=[f"mlflow=={mlflow.__version__}", "knnclip"])
    assert (model_dir / store.SNAPSHOT_IN_MODEL / MANIFEST_FILE).is_file(), "the snapshot is not where loaders look"
    return model_dir


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
                     fingerprint: Optional[str] = None, frames: Optional[dict] = None) -> dict:
    """Register a verified snapshot folder as a new version of `ctx.model_name`.

    `frames` maps (dataset, batch) to a DataFrame of the rows taken from that batch (logged as
    the run's dataset inputs; without one a source is logged by name only).
    Returns {'version', 'model_name', 'uri', 'run_id', 'alias', 'previous', 'vectors',
    'classes', 'factory', 'recall_at_10', 'embedder_id'}. Raises VerificationError when the
    folder does not verify."""
    snapshot_dir = Path(snapshot_dir)
    manifest = verify_snapshot(snapshot_dir)
    alias = check_alias(alias if alias is not None else ctx.settings.publish.alias)
    client = ctx.client
    lineage = manifest.get("lineage") or {}
    backbone = backbone or lineage.get("backbone")
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
                  "backbone": backbone}
        metrics = {"vectors": manifest["vectors"], "classes": manifest["classes"],
                   "recall_at_10": manifest["recall_at_10"], "index_bytes": manifest["bytes"]["index"],
                   "bytes_ratio_to_flat": manifest["bytes"]["ratio_to_flat"],
                   "build_seconds": manifest["build"]["build_seconds"]}
        if (manifest.get("calibration") or {}).get("threshold") is not None:
            metrics["confidence_threshold"] = manifest["calibration"]["threshold"]  # the release's own T
        client.log_batch(run_id, params=[Param(k, redact_text(v)[:6000]) for k, v in params.items()],
                         metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        with tempfile.TemporaryDirectory(prefix="knnclip-pyfunc-") as tmp:
            model_dir = save_pyfunc(Path(tmp) / MODEL_ARTIFACT, snapshot_dir, ctx.settings)
            client.log_artifacts(run_id, str(model_dir), artifact_path=MODEL_ARTIFACT)
        for report in reports:
            client.log_artifact(run_id, str(report), artifact_path="reports")
        ctx.ensure_model()
        latest = ctx.latest_version()
        previous = int(latest.version) if latest is not None else None
        manifest_sha = sha256_file(snapshot_dir / MANIFEST_FILE)
        record = redact_obj(provenance_record(manifest, manifest_sha, ctx.settings, backbone, fingerprint, previous))
        log_provenance(ctx, run_id, record)
        inputs = dataset_inputs(record["sources"], frames)
        for start in range(0, len(inputs), 100):
            client.log_inputs(run_id, datasets=inputs[start:start + 100])
        tags = {store.TAG_EMBEDDER: manifest["embedder_id"], store.TAG_MANIFEST_SHA: manifest_sha,
                store.TAG_LAYOUT: "pyfunc"}
        if fingerprint:
            tags[store.TAG_FINGERPRINT] = fingerprint
        mv = client.create_model_version(ctx.model_name, source=f"{run.info.artifact_uri}/{MODEL_ARTIFACT}",
                                         run_id=run_id, tags=redact_obj(tags),
                                         description=redact_text(describe(manifest, record,
                                                                          _changes_since(ctx, previous, manifest, snapshot_dir))))
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


def _changes_since(ctx: RegistryContext, previous: Optional[int], manifest: dict, snapshot_dir: Path) -> list[str]:
    """The description's 'Changes' lines against version `previous` (read without the index)."""
    if previous is None:
        return change_lines(None, None, None)
    from mlflow.exceptions import MlflowException

    from knnclip_core.index.snapshot import LABELS_FILE

    try:
        old_manifest, old_ids = previous_parts(ctx, previous)
        ids = segment_ids_of(snapshot_dir / LABELS_FILE)
        return change_lines(previous, changes(old_manifest, manifest), row_changes(old_ids, ids))
    except (KnnclipError, MlflowException, OSError, KeyError, ValueError) as exc:
        logger.warning("the description of the new version cannot say what changed since version %s: %s",
                       previous, exc)
        return change_lines(previous, None, None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


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
    facts = release_facts(ctx, [mv])[version]
    return {"version": version, "model_name": ctx.model_name, "uri": f"models:/{ctx.model_name}/{version}",
            "run_id": mv.run_id, "alias": alias or None, "previous": previous, "reused": True,
            "vectors": facts["vectors"] or 0, "classes": facts["classes"] or 0, "factory": facts["factory"],
            "recall_at_10": facts["recall_at_10"] if facts["recall_at_10"] is not None else float("nan"),
            "embedder_id": facts["embedder_id"]}


def thing_classes(ws: Workspace, vocabulary: set[str]) -> list[str]:
    """Classes of `vocabulary` the catalog knows as things (instances in panoptic output)."""
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, session_scope

    with session_scope(ws.catalog_url) as s:
        rows = s.exec(select(ClassName.name).where(ClassName.is_thing == True)).all()  # noqa: E712
    return sorted(set(rows) & vocabulary)


def source_frames(kept) -> dict:
    """(dataset, batch) -> DataFrame (segment_id, class_name) of the kept rows taken from it."""
    import pandas as pd

    df = pd.DataFrame({"segment_id": list(map(str, kept.ids)), "class_name": list(map(str, kept.class_names)),
                       "dataset": list(map(str, kept.datasets)), "batch": list(map(str, kept.batch_ids))})
    return {key: part[["segment_id", "class_name"]].reset_index(drop=True)
            for key, part in df.groupby(["dataset", "batch"], sort=True)}


def batch_sources(ws: Workspace, frames: dict) -> list[dict]:
    """One record per (dataset, batch) of `frames`: rows published, and from the catalog the
    batch's source path, format, content hash, images and segments (None when unknown)."""
    from sqlmodel import select

    from knnclip_core.catalog import IngestBatch, session_scope

    ids = sorted({batch for _, batch in frames})
    with session_scope(ws.catalog_url) as s:
        known = {b.id: b for b in s.exec(select(IngestBatch).where(IngestBatch.id.in_(ids))).all()} if ids else {}
        out = []
        for (dataset, batch), frame in frames.items():
            b = known.get(batch)
            out.append({"dataset": dataset, "batch": batch, "rows": len(frame),
                        "source": b.source if b else None, "format": b.format if b else None,
                        "content_hash": b.content_hash if b else None, "images": b.images if b else None,
                        "segments": b.segments if b else None})
    return out


def publish_byte_budget(settings: Settings, ws: Workspace, embedder_id: str, lance_version: int) -> Optional[int]:
    """Bytes the published index must fit: the MB budget the memory version was curated under
    (`knnclip curate|run --budget-mb`, or the config then), else settings.curate.budget_mb; None: no budget."""
    from knnclip_core.memory.budget import BYTES_PER_MB
    from knnclip_core.memory.curate import curated_budget_mb

    mb = curated_budget_mb(ws, embedder_id, lance_version) or settings.curate.budget_mb
    return int(mb * BYTES_PER_MB) if mb else None


def publish(settings: Settings, ws: Workspace, backbone: Optional[str] = None, alias: Optional[str] = None,
            index: Optional[str] = None, tag: Optional[str] = None) -> dict:
    """Build a snapshot from the KEPT rows of the memory of `backbone` (default: the only
    memory, or with several the one of settings.embed.backbone) and publish it (see `publish_snapshot`). `index` overrides the
    index choice (FAISS factory string); the byte budget is `publish_byte_budget`'s.
    When the newest release already holds the same content, it is returned (`reused`)
    instead of a duplicate version; publishers of one model take turns (BusyError after
    PUBLISH_LOCK_TIMEOUT_S). Raises RecallFloorError, KnnclipError when the memory is empty,
    InputError when no memory matches."""
    alias = check_alias(alias if alias is not None else settings.publish.alias)
    model = settings.publish.model_name
    # One publisher per model at a time (across machines when the lock is on PostgreSQL): the
    # memory is read and the reuse check made under it, so an unchanged memory never gives two versions.
    with workspace_lock(ws, f"publish-{re.sub(r'[^A-Za-z0-9._-]', '_', model)}.lock", PUBLISH_LOCK_TIMEOUT_S,
                        what="publish", guards=f"publishing to {model!r}"):
        return _publish_locked(settings, ws, backbone, alias, index, tag)


def _publish_locked(settings: Settings, ws: Workspace, backbone: Optional[str], alias: str,
                    index: Optional[str], tag: Optional[str]) -> dict:
    """`publish` with the publish lock held."""
    from knnclip_core.memory.published import load_kept
    from knnclip_core.memory.resolve import resolve_embedder_id

    embedder_id = resolve_embedder_id(ws, backbone, configured=settings.embed.backbone)
    try:
        kept = load_kept(ws, embedder_id, tag=tag)
    except FileNotFoundError as exc:
        raise KnnclipError(f"there is nothing to publish: {exc}") from None
    backbone = (kept.provenance or {}).get("backbone", {}).get("name") or backbone or settings.embed.backbone
    if len(kept.ids) == 0:
        raise KnnclipError(f"the memory of backbone {backbone!r} has no kept rows; run `knnclip curate` first")
    lineage = {"backbone": backbone, "lance_version": kept.lance_version, "lance_tag": kept.lance_tag,
               "batches": sorted(set(map(str, kept.batch_ids))), "datasets": sorted(set(map(str, kept.datasets))),
               "memory_table": kept.table_name}
    frames = source_frames(kept)
    lineage["sources"] = batch_sources(ws, frames)
    budget = publish_byte_budget(settings, ws, embedder_id, kept.lance_version)
    names = list(kept.class_names)  # one per row
    lineage["thing_classes"] = thing_classes(ws, set(names))
    factory = index or settings.publish.index
    from knnclip_core.segment.calibrate import calibrate_release, calibration_settings

    fingerprint = content_fingerprint(embedder_id, kept.ids, names, {"factory": factory, "byte_budget": budget,
                                                                     "recall_floor": settings.publish.recall_floor,
                                                                     "calibration": calibration_settings(settings)})
    ctx = open_registry(settings, ws, command="publish")
    fail_interrupted_runs(ctx)  # before the reuse shortcut: a publish killed after its version exists leaves none RUNNING
    reused = reuse_latest(ctx, fingerprint, alias)
    if reused is not None:
        logger.info("memory unchanged since version %d: no new release", reused["version"])
        return reused
    # T measured on a held-out split of these rows, by image (knnclip_core/segment/calibrate.py)
    calibration = calibrate_release(settings, kept.vectors, names, kept.image_ids)
    work = Path(tempfile.mkdtemp(prefix="publish-", dir=ws.cache_dir))
    try:
        build_snapshot(work / "snapshot", kept.vectors, list(kept.ids), names, embedder_id,
                       lineage=lineage, factory=factory, byte_budget=budget,
                       recall_floor=settings.publish.recall_floor, provenance=kept.provenance,
                       calibration=calibration)
        return publish_snapshot(ctx, work / "snapshot", alias=alias, reports=find_reports(ws.reports_dir),
                                backbone=backbone, fingerprint=fingerprint, frames=frames)
    finally:
        shutil.rmtree(work, ignore_errors=True)
