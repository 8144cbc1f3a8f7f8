"""What the memory page shows, as JSON-ready dicts: every memory table's composition and
curation history, and the catalog (datasets, ingest batches, quarantine by reason).

Nothing here writes to the workspace: an empty or missing workspace gives empty lists.
"""
from __future__ import annotations

import logging
from typing import Optional

from sqlalchemy import func
from sqlmodel import select

from knnclip_core.catalog import Dataset, Image, IngestBatch, Quarantine, Segment, session_scope
from knnclip_core.catalog.queries import catalog_missing as sqlite_missing
from knnclip_core.config import Settings
from knnclip_core.redact import redact_text, redact_url
from knnclip_core.memory.resolve import memory_embedder_ids
from knnclip_core.memory.stats import memory_history, table_stats
from knnclip_core.workspace import Workspace

logger = logging.getLogger(__name__)

MAX_BATCHES = 200  # most recent ingest batches listed


def _error(exc: Exception) -> str:
    return redact_text(str(exc) or type(exc).__name__)


def catalog_summary(ws: Workspace, max_batches: int = MAX_BATCHES) -> dict:
    """{'datasets': [{name, created, batches, images, segments}], 'batches': [{id, dataset, source,
    format, status, images, segments, new_segments, classes, quarantined, quarantine_reasons,
    started, finished, seconds, error}] most recent first, 'totals': {...}}."""
    empty = {"datasets": [], "batches": [], "totals": {"datasets": 0, "batches": 0, "images": 0,
                                                       "segments": 0, "quarantined": 0}}
    if sqlite_missing(ws.catalog_url):
        return empty
    with session_scope(ws.catalog_url) as s:
        names = {d.id: d for d in s.exec(select(Dataset))}
        images = dict(s.exec(select(Image.dataset_id, func.count()).group_by(Image.dataset_id)).all())
        segments = dict(s.exec(select(Segment.dataset_id, func.count()).group_by(Segment.dataset_id)).all())
        reasons: dict[str, dict[str, int]] = {}
        for batch_id, reason, n in s.exec(select(Quarantine.batch_id, Quarantine.reason, func.count())
                                          .group_by(Quarantine.batch_id, Quarantine.reason)).all():
            reasons.setdefault(batch_id, {})[reason] = int(n)
        all_batches = list(s.exec(select(IngestBatch).order_by(IngestBatch.started.desc())))
    batch_count: dict[int, int] = {}
    for b in all_batches:
        batch_count[b.dataset_id] = batch_count.get(b.dataset_id, 0) + 1
    datasets = [{"name": d.name, "created": d.created.isoformat(), "batches": batch_count.get(i, 0),
                 "images": int(images.get(i, 0)), "segments": int(segments.get(i, 0))}
                for i, d in sorted(names.items())]
    batches = [{"id": b.id, "dataset": names[b.dataset_id].name if b.dataset_id in names else str(b.dataset_id),
                "source": b.source, "format": b.format, "status": b.status, "images": b.images,
                "segments": b.segments, "new_segments": b.new_segments, "classes": b.classes,
                "quarantined": b.quarantined, "quarantine_reasons": dict(sorted(reasons.get(b.id, {}).items())),
                "started": b.started.isoformat(), "finished": b.finished.isoformat() if b.finished else None,
                "seconds": round(b.seconds, 2), "error": b.error or None}
               for b in all_batches[:max_batches]]
    totals = {"datasets": len(datasets), "batches": len(all_batches), "images": sum(images.values()),
              "segments": sum(segments.values()), "quarantined": sum(b.quarantined for b in all_batches)}
    return {"datasets": datasets, "batches": batches, "totals": totals}


def memory_overview(settings: Settings, ws: Optional[Workspace] = None) -> dict:
    """Everything the memory page shows: {'home', 'memories': [table_stats + 'runs' (curation runs
    of that table, newest first) or {'embedder_id', 'error'}], 'forget_rules', 'catalog'}.
    Never raises for an empty workspace; a table that cannot be read is reported by its error."""
    ws = ws or Workspace.from_settings(settings)
    out: dict = {"home": str(ws.home), "memories": [], "forget_rules": [], "catalog": None, "errors": []}
    history: dict = {"runs": [], "forget_rules": []}
    if not sqlite_missing(ws.catalog_url):
        try:
            history = memory_history(ws)
        except Exception as exc:  # noqa: BLE001 - show the problem on the page instead of a 500
            logger.exception("curation history unreadable")
            out["errors"].append(f"curation history: {_error(exc)}")
    out["forget_rules"] = history["forget_rules"]
    try:
        ids = memory_embedder_ids(ws)
    except Exception as exc:  # noqa: BLE001
        logger.exception("memory folder unreadable")
        out["errors"].append(f"memory {ws.memory_uri}: {_error(exc)}")
        ids = []
    for embedder_id in ids:
        runs = [r for r in reversed(history["runs"]) if r["embedder_id"] == embedder_id]
        try:
            out["memories"].append({**table_stats(ws, embedder_id), "runs": runs})
        except Exception as exc:  # noqa: BLE001
            logger.exception("memory %s unreadable", embedder_id)
            out["memories"].append({"embedder_id": embedder_id, "error": _error(exc), "runs": runs})
    try:
        out["catalog"] = catalog_summary(ws)
    except Exception as exc:  # noqa: BLE001
        logger.exception("catalog unreadable")
        out["errors"].append(f"catalog {redact_url(ws.catalog_url)}: {_error(exc)}")
    return out
