"""Thin Prefect tasks: one library call each. Retries only on I/O errors (OSError), never
on bad input. Settings travel as plain dicts so that task inputs hash and cache."""
from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Optional

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.concurrency.sync import concurrency

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError
from knnclip_core.workspace import Workspace

logger = logging.getLogger(__name__)

GPU_LIMIT = "knnclip-gpu"  # global concurrency limit held by embedding tasks


def retry_on_io(task, task_run, state) -> bool:
    """Retry a failed task only when it failed on I/O (OSError), not on bad input."""
    try:
        state.result()
    except KnnclipError:
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


IO_RETRIES = dict(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_io)


def settings_of(d: dict) -> Settings:
    return Settings(**d)


@task(name="ingest", cache_policy=INPUTS + TASK_SOURCE, persist_result=True, **IO_RETRIES)
def ingest_task(settings: dict, path: str, fmt: str, reader: dict, min_area: Optional[int], fingerprint: str) -> dict:
    """Ingest one source; cached by its inputs, including the source's fingerprint."""
    from knnclip_core.ingest import ingest_path

    return ingest_path(settings_of(settings), path, fmt, min_area=min_area, progress=False,
                       extra_params={"fingerprint": fingerprint}, **reader).to_dict()


@task(name="embed", **IO_RETRIES)
def embed_task(settings: dict, backbone: Optional[str], device: Optional[str], batch_size: Optional[int],
               shard: tuple[int, int] = (0, 1)) -> dict:
    """Embed the segments of one shard not yet in the memory (resumable by design)."""
    from knnclip_core.embedders.base import resolve_device
    from knnclip_core.embed_stage import run_embed

    s = settings_of(settings)
    on_gpu = resolve_device(device or s.embed.device).startswith("cuda")
    # The GPU slot's lease is short and renewed while held, so a killed run frees it quickly.
    with concurrency(GPU_LIMIT, occupy=1, lease_duration=30) if on_gpu else nullcontext():
        return run_embed(s, backbone=backbone, device=device, batch_size=batch_size, shard=tuple(shard))


@task(name="curate", **IO_RETRIES)
def curate_task(settings: dict, backbone: Optional[str], options: dict) -> dict:
    """Curate the memory (deterministic: the same rows and rules give the same states)."""
    from knnclip_core.memory.curate import curate

    s = settings_of(settings)
    return curate(s, Workspace.from_settings(s).ensure(), backbone, **options)


@task(name="publish", **IO_RETRIES)
def publish_task(settings: dict, backbone: Optional[str], alias: Optional[str], index: Optional[str]) -> dict:
    """Publish the kept memory as a release (returns the existing one when unchanged)."""
    from registry.publish import publish

    s = settings_of(settings)
    return publish(s, Workspace.from_settings(s).ensure(), backbone=backbone, alias=alias, index=index)


@task(name="diff", **IO_RETRIES)
def diff_task(settings: dict, a: int, b: int) -> dict:
    from registry.releases import diff_releases
    from registry.store import open_registry

    return diff_releases(open_registry(settings_of(settings)), a, b)


@task(name="promote", **IO_RETRIES)
def promote_task(settings: dict, version: int, alias: str, force: bool = False) -> dict:
    from registry.releases import promote
    from registry.store import open_registry

    return promote(open_registry(settings_of(settings)), version, alias=alias, force=force)
