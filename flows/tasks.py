"""Thin Prefect tasks: one library call each. Retries only on I/O errors (OSError), never
on bad input. Settings travel as plain dicts WITHOUT secrets (see `public_settings`);
tasks read the secrets from the environment. No task result is persisted by Prefect
(no pickles in the workspace); ingest caches its summary as JSON (flows/json_cache.py)."""
from __future__ import annotations

import errno
import logging
import os
from contextlib import nullcontext
from typing import Optional

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError
from knnclip_core.redact import redacting
from knnclip_core.workspace import Workspace
from registry.errors import registry_sentences

from flows.runlog import progress_sink, stage

logger = logging.getLogger(__name__)

GPU_LIMIT = "knnclip-gpu"  # global concurrency limit held by embedding tasks


# OSError numbers worth a retry: the resource is busy, the network or the device hiccupped.
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET,
                              errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ENETDOWN,
                              errno.ENETUNREACH, errno.EHOSTUNREACH})


def is_transient(exc: BaseException) -> bool:
    """True for an error a retry may cure (a dropped connection, a timeout, a busy or briefly
    failing device); False for bad input and for what a retry cannot change (a missing file,
    no permission, a full disk, any KnnclipError)."""
    if isinstance(exc, KnnclipError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, InterruptedError, BlockingIOError)):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def retry_on_io(task, task_run, state) -> bool:
    """Retry a failed task only when it failed on a transient I/O error (`is_transient`)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failure is what is judged
        return is_transient(exc)
    return False


# Nothing is pickled: Prefect neither caches nor persists these tasks' results.
IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io,
                  cache_policy=NO_CACHE, persist_result=False)
SECRET_FIELDS = frozenset({"worker_token", "catalog_url", "lock_url"})  # never flow, task or deployment parameters (DB URLs carry passwords)


def public_settings(settings: Settings) -> dict:
    """The settings as a JSON dict without the secrets (they stay in the environment)."""
    return settings.model_dump(mode="json", exclude=set(SECRET_FIELDS))


def export_secrets(settings: Settings) -> None:
    """Put the secrets of `settings` (e.g. read from a config file) into this process's
    environment, where `settings_of` finds them again, so they need not travel as parameters."""
    for name in SECRET_FIELDS:
        value = getattr(settings, name)
        if value is not None:
            os.environ.setdefault(f"KNNCLIP_{name.upper()}", str(value))


def settings_of(d: dict) -> Settings:
    """Settings from a parameter dict; secret keys in it are ignored, the environment's used."""
    return Settings(**{k: v for k, v in d.items() if k not in SECRET_FIELDS})


@task(name="ingest", **IO_RETRIES)
@redacting
def ingest_task(settings: dict, path: str, fmt: str, reader: dict, fingerprint: str) -> dict:
    """Ingest one source; its summary is cached as JSON by its inputs, the source's fingerprint
    included, so a rerun after a kill skips sources already ingested."""
    from knnclip_core.stage_api import ingest
    from knnclip_core.stages.results import IngestReport

    from flows import json_cache

    s = settings_of(settings)
    ws = Workspace.from_settings(s).ensure()
    key = json_cache.cache_key(ingest_task.fn, {"settings": public_settings(s), "path": path, "fmt": fmt,
                                                "reader": reader, "fingerprint": fingerprint})
    folder = ws.cache_dir / "flow-results"
    cached = json_cache.read(folder, "ingest", key)
    if cached is not None and _batch_done(ws, cached.get("batch_id")):  # the catalog still holds it
        stage(IngestReport.from_json({**cached, "cached": True}).line())
        return cached
    report = ingest(s, ws, path=path, format=fmt, progress=progress_sink(), extra_params={"fingerprint": fingerprint},
                    **reader)
    result = report.to_json()
    json_cache.write(folder, "ingest", key, result)
    stage(report.line())
    return result


def _batch_done(ws: Workspace, batch_id) -> bool:
    """True when the catalog records ingest batch `batch_id` as done."""
    from knnclip_core.catalog import IngestBatch, session_scope

    with session_scope(ws.catalog_url) as s:
        batch = s.get(IngestBatch, str(batch_id))
        return batch is not None and batch.status == "done"


@task(name="embed", **IO_RETRIES)
@redacting
def embed_task(settings: dict, shard: tuple[int, int] = (0, 1)) -> dict:
    """Embed the segments of one shard not yet in the memory (resumable by design), as the
    settings' embed section says."""
    from knnclip_core.embedders.base import resolve_device
    from knnclip_core.stage_api import embed

    s = settings_of(settings)
    on_gpu = resolve_device(s.embed.device).startswith("cuda")
    # The GPU slot's lease is short and renewed while held, so a killed run frees it quickly.
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=30) if on_gpu else nullcontext():
        result = embed(s, Workspace.from_settings(s).ensure(), shard=tuple(shard), progress=progress_sink())
    if shard[1] > 1:  # the flow logs the merged line
        stage(result.line(prefix=f"embed shard {shard[0] + 1}/{shard[1]}"))
    return result.to_json()


@task(name="curate", **IO_RETRIES)
@redacting
def curate_task(settings: dict, backbone: Optional[str], dedup_method: Optional[str] = None) -> dict:
    """Curate the memory (deterministic: the same rows and rules give the same states)."""
    from knnclip_core.stage_api import curate

    s = settings_of(settings)
    result = curate(s, Workspace.from_settings(s).ensure(), backbone=backbone, dedup_method=dedup_method)
    stage(result.line())
    return result.to_json()


@task(name="publish", **IO_RETRIES)
@redacting
@registry_sentences
def publish_task(settings: dict, backbone: Optional[str]) -> dict:
    """Publish the kept memory as a release (returns the existing one when unchanged), with
    where its MLflow run lives ('tracking_uri', 'experiment_id') for the run summary."""
    from registry.stages import publish

    s = settings_of(settings)
    result = publish(s, Workspace.from_settings(s).ensure(), backbone=backbone)
    stage(result.line())
    return result.to_json()


@task(name="diff", **IO_RETRIES)
@redacting
@registry_sentences
def diff_task(settings: dict, a: int, b: int) -> dict:
    from registry.releases import diff_releases
    from registry.store import open_registry

    return diff_releases(open_registry(settings_of(settings)), a, b)


@task(name="promote", **IO_RETRIES)
@redacting
@registry_sentences
def promote_task(settings: dict, version: int, alias: str, force: bool = False) -> dict:
    from registry.stages import promote

    s = settings_of(settings)
    return promote(s, Workspace.from_settings(s).ensure(), version=version, alias=alias, force=force).to_json()
