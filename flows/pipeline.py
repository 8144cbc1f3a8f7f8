"""The flows: ingest, embed, curate, publish, and the end-to-end curation pipeline.

Resume: ingest is cached on its inputs and the source's fingerprint, embedding writes
in chunks and only does what is missing, curation is deterministic, and publishing an
unchanged memory returns the existing release; a run killed at any point and started
again ends with the same memory and release.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from knnclip_core.config import Settings, load_settings
from knnclip_core.errors import KnnclipError, VerificationError
from knnclip_core.fingerprint import source_fingerprint
from knnclip_core.redact import redact_text
from knnclip_core.workspace import Workspace

from knnclip_core.stages.results import EmbedResult, PromoteResult

from flows.reports import class_table, diff_line, pipeline_markdown
from flows.runlog import stage
from flows.tasks import (GPU_LIMIT, SECRET_FIELDS, curate_task, diff_task, embed_task, ingest_task, promote_task,
                         public_settings, publish_task, settings_of)

logger = logging.getLogger(__name__)


def _settings_dict(settings: Optional[dict]) -> dict:
    """The non-secret settings tasks get (secrets are read from the environment by each task).
    Raises KnnclipError when the caller passed a secret as a flow parameter."""
    leaked = sorted(k for k in SECRET_FIELDS if (settings or {}).get(k) is not None)
    if leaked:
        raise KnnclipError(f"secret settings ({', '.join(leaked)}) were passed as flow parameters, where Prefect "
                           f"stores them; pass public_settings(settings) and keep secrets in the environment")
    return public_settings(settings_of(settings) if settings is not None else load_settings())


def _asked(s: dict, curate: Optional[dict] = None, **sections: Optional[dict]) -> dict:
    """The run's settings dict with what the run was asked applied once, at this edge: the
    curation options (`curate`, see knnclip_core.memory.curate.curation_settings) and other
    sections' values (e.g. publish={"index": ...}); every stage then reads only these settings."""
    from knnclip_core.memory.curate import curation_settings
    from knnclip_core.overrides import settings_asked

    settings = curation_settings(settings_of(s), **(curate or {}))
    return public_settings(settings_asked(settings, "run", **sections))


def run_name() -> str:
    """'<dataset or drop folder> <UTC time>' for a flow run, e.g. 'camvid 2026-12-03 09:30:12Z':
    the source's folder (or file) name from the run's parameters, 'catalog' without one."""
    import datetime as dt

    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    source = params.get("path") or params.get("watch_dir") or next(iter(params.get("sources") or []), None)
    label = Path(str(source)).name if source else f"catalog ({params['backbone']})" if params.get("backbone") else "catalog"
    return f"{label} {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%SZ}"


def ensure_gpu_limit(limit: int) -> None:
    """Create the global concurrency limit embedding tasks hold, if it does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except Exception:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=limit))
            except Exception as exc:  # created concurrently
                logger.debug("concurrency limit %s: %s", GPU_LIMIT, exc)


def dask_security(address: str):
    """The client Security for a tls:// scheduler, from dask's TLS settings (DASK_DISTRIBUTED__COMM__TLS__* in a
    stack's stack.env); None for other addresses. Raises KnnclipError when the certificate is not configured."""
    if not address.startswith("tls://"):
        return None
    from distributed.security import Security

    sec = Security(require_encryption=True)
    if not (sec.tls_ca_file and sec.tls_client_cert and sec.tls_client_key):
        raise KnnclipError(f"the Dask scheduler {address} takes only clients with the cluster's certificate, and none "
                           "is configured: set DASK_DISTRIBUTED__COMM__TLS__CA_FILE, __CLIENT__CERT and __CLIENT__KEY "
                           "(source the stack's stack.env)")
    return sec


def dask_runner(address: Optional[str], workers: int):
    """Prefect's Dask task runner on an existing cluster (`address`, with its TLS Security) or a local one."""
    from prefect_dask import DaskTaskRunner

    if address:
        sec = dask_security(address)
        return DaskTaskRunner(address=address, client_kwargs={"security": sec} if sec else None)
    return DaskTaskRunner(cluster_kwargs={"n_workers": max(1, workers), "processes": True, "threads_per_worker": 1,
                                          "dashboard_address": None})


@flow(name="knnclip-ingest", flow_run_name=run_name, persist_result=False)
def ingest_flow(path: str, format: str = "auto", reader: Optional[dict] = None, min_area: Optional[int] = None,
                settings: Optional[dict] = None) -> dict:
    """Ingest one source into the catalog."""
    s = _asked(_settings_dict(settings), ingest={"min_area": min_area})
    return ingest_task(s, str(path), format, reader or {}, source_fingerprint(path))


@flow(name="knnclip-embed", flow_run_name=run_name, persist_result=False)
def embed_flow(backbone: Optional[str] = None, device: Optional[str] = None, batch_size: Optional[int] = None,
               shards: int = 1, settings: Optional[dict] = None) -> dict:
    """Embed every segment missing from the memory, in `shards` parallel tasks."""
    s = _asked(_settings_dict(settings), embed={"backbone": backbone, "device": device, "batch_size": batch_size})
    ensure_gpu_limit(settings_of(s).embed.gpu_concurrency)
    futures = [embed_task.submit(s, (i, shards)) for i in range(shards)]
    merged = EmbedResult.merged([EmbedResult.from_json(f.result()) for f in futures], shards)  # disjoint shards
    stage(merged.line())
    return merged.to_json()


@flow(name="knnclip-curate", flow_run_name=run_name, persist_result=False)
def curate_flow(backbone: Optional[str] = None, options: Optional[dict] = None, settings: Optional[dict] = None) -> dict:
    """Curate the memory of `backbone`; `options` as `knnclip curate` takes them (budget_vectors,
    budget_mb, strategy, ..., dedup_method)."""
    options = dict(options or {})
    dedup_method = options.pop("dedup_method", None)
    return curate_task(_asked(_settings_dict(settings), curate=options), backbone, dedup_method)


@flow(name="knnclip-publish", flow_run_name=run_name, persist_result=False)
def publish_flow(backbone: Optional[str] = None, alias: Optional[str] = "staging", index: Optional[str] = None,
                 settings: Optional[dict] = None) -> dict:
    """Publish the curated memory of `backbone` as a release taking `alias` ('' for none)."""
    return publish_task(_asked(_settings_dict(settings), publish={"alias": alias, "index": index}), backbone)


@flow(name="knnclip-curation-pipeline", flow_run_name=run_name, persist_result=False)
def curation_pipeline(path: Optional[str] = None, format: str = "auto", backbone: Optional[str] = None,
                      budget_vectors: Optional[int] = None, budget_mb: Optional[float] = None,
                      strategy: Optional[str] = None, dedup_threshold: Optional[float] = None,
                      alias: Optional[str] = "staging", promote_to: Optional[str] = None,
                      index: Optional[str] = None, device: Optional[str] = None, batch_size: Optional[int] = None,
                      embed_shards: int = 1, dask_address: Optional[str] = None, use_dask: bool = False,
                      reader: Optional[dict] = None, min_area: Optional[int] = None,
                      sources: Optional[list[str]] = None, settings: Optional[dict] = None) -> dict:
    """New labelled data -> catalog -> memory -> curated memory -> registered release.

    `path` (or several `sources`) is ingested first; with neither, the pipeline curates
    and publishes what the catalog already holds. Returns a summary with the release.
    """
    s = _asked(_settings_dict(settings), curate=dict(budget_vectors=budget_vectors, budget_mb=budget_mb,
                                                     strategy=strategy, dedup_threshold=dedup_threshold),
               publish={"alias": alias, "index": index}, ingest={"min_area": min_area})  # once, here: every stage reads only `s`
    sources = list(sources or []) + ([str(path)] if path else [])
    stage(f"run: {len(sources)} source(s) to ingest" + (f" ({', '.join(sources)})" if sources else
                                                        ", curating and publishing what the catalog holds"))
    ingests = [ingest_task(s, src, format, reader or {}, source_fingerprint(src)) for src in sources]
    embed = embed_flow.with_options(task_runner=dask_runner(dask_address, embed_shards)) if use_dask or dask_address else embed_flow
    # the subflow gets the settings parameter as this run got it (None from the CLI: read from the
    # environment), so that Prefect never stores a settings dump as a run's parameters
    embedded = embed(backbone=backbone, device=device, batch_size=batch_size, shards=embed_shards, settings=settings)
    stage(EmbedResult.from_json(embedded).line(), echo=False)  # the subflow printed it; this puts it in this run's logs too
    curation = curate_task(s, backbone)
    release = publish_task(s, backbone)
    previous = release.get("previous")
    diff = diff_task(s, previous, release["version"]) if previous and previous != release["version"] else None
    if diff:
        stage(diff_line(diff))
    promoted, refusal = _promote(s, release["version"], promote_to)
    create_markdown_artifact(key="knnclip-run-summary",
                             markdown=redact_text(pipeline_markdown(ingests, embedded, curation, release, diff,
                                                                    promoted or refusal)),
                             description="knnclip curation pipeline summary")
    table = class_table(curation)
    if table:
        create_table_artifact(key="knnclip-memory-classes", table=table, description="memory per class after curation")
    if refusal:
        raise refusal["error"]  # after the summary, which says why
    return {"ingest": ingests, "embed": embedded, "curate": curation, "release": release, "diff": diff,
            "promoted": promoted}


def _promote(s: dict, version: int, alias: Optional[str]) -> tuple[Optional[dict], Optional[dict]]:
    """(promotion result, None), or (None, refusal) when the gate or the snapshot check refused
    it; logs the promote stage line. With no `alias`, (None, None): promotion was not asked."""
    if not alias:
        stage(PromoteResult().line())
        return None, None
    from registry.gate import GateRefusedError

    try:
        promoted = promote_task(s, version, alias)
    except (GateRefusedError, VerificationError) as exc:
        refused = PromoteResult(status="refused", alias=alias, version=version, reason=str(exc))
        stage(refused.line())
        return None, {**refused.to_json(), "error": exc}
    stage(PromoteResult.from_json(promoted).line())
    return promoted, None


def new_sources(settings: Settings, watch_dir: str | Path) -> list[str]:
    """Entries of a drop folder (dataset folders or COCO JSON files) whose fingerprint no
    finished ingest batch has recorded yet."""
    import json

    from sqlmodel import select

    from knnclip_core.catalog import IngestBatch, session_scope

    ws = Workspace.from_settings(settings).ensure()
    with session_scope(ws.catalog_url) as s:
        done = {json.loads(b.params_json).get("fingerprint") for b in
                s.exec(select(IngestBatch).where(IngestBatch.status == "done")).all()}
    entries = sorted(p for p in Path(watch_dir).iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix.lower() == ".json"))
    return [str(p) for p in entries if source_fingerprint(p) not in done]


@flow(name="knnclip-drop-folder", flow_run_name=run_name, persist_result=False)
def drop_folder_pipeline(watch_dir: str, backbone: Optional[str] = None, alias: Optional[str] = "staging",
                         budget_vectors: Optional[int] = None, budget_mb: Optional[float] = None,
                         settings: Optional[dict] = None) -> dict:
    """Scheduled entry point: ingest only the batches of `watch_dir` not yet ingested, then
    curate and publish when there was something new."""
    s = _settings_dict(settings)
    todo = new_sources(settings_of(s), watch_dir)
    if not todo:
        stage(f"drop folder: no new batch in {watch_dir}")
        return {"new_sources": [], "release": None}
    stage(f"drop folder: {len(todo)} new batch(es) in {watch_dir}: {', '.join(Path(p).name for p in todo)}")
    result = curation_pipeline(sources=todo, backbone=backbone, alias=alias, budget_vectors=budget_vectors,
                               budget_mb=budget_mb, settings=settings)
    return {"new_sources": todo, **result}
