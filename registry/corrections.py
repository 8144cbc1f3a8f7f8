"""Which rows and classes of a release came from labelling corrections (knnclip label import).

A correction batch is an ingest batch whose reader format starts with `correction-`; the
release's lineage names its source batches with their format. The catalog gives each
such batch's segments and classes and the releases its labels corrected."""
from __future__ import annotations

import json
import logging
from typing import Sequence

from knnclip_core.labelling.importer import CORRECTION_FORMAT_PREFIX

logger = logging.getLogger(__name__)


def correction_changes(settings, manifest_b: dict, ids_a: Sequence[str], ids_b: Sequence[str]) -> dict:
    """{'batches': [{batch, tool, rows, releases, tasks}], 'rows_added', 'classes': {name: rows added},
    'new_classes': [...]} for the correction batches release b holds rows of."""
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, IngestBatch, Segment, session_scope
    from knnclip_core.workspace import Workspace

    sources = [s for s in (manifest_b.get("lineage") or {}).get("sources") or []
               if str(s.get("format") or "").startswith(CORRECTION_FORMAT_PREFIX)]
    out = {"batches": [], "rows_added": 0, "classes": {}, "new_classes": []}
    if not sources:
        return out
    added = set(map(str, ids_b)) - set(map(str, ids_a))
    try:
        ws = Workspace.from_settings(settings)
        with session_scope(ws.catalog_url) as s:
            for src in sources:
                batch = s.get(IngestBatch, src["batch"])
                tags = (json.loads(batch.params_json or "{}") if batch else {}).get("correction") or {}
                segs = s.exec(select(Segment.id, ClassName.name).join(ClassName, Segment.class_id == ClassName.id)
                              .where(Segment.batch_id == src["batch"])).all()
                fresh = [(sid, name) for sid, name in segs if sid in added]
                for _, name in fresh:
                    out["classes"][name] = out["classes"].get(name, 0) + 1
                out["rows_added"] += len(fresh)
                out["batches"].append({"batch": src["batch"], "tool": src["format"][len(CORRECTION_FORMAT_PREFIX):],
                                       "rows": src.get("rows"), "rows_added": len(fresh),
                                       "releases": tags.get("releases", []), "tasks": len(tags.get("tasks", []))})
    except Exception as exc:  # the catalog is not reachable from here: the lineage still says which batches
        logger.warning("catalog not readable for the corrections of the diff: %s", exc)
        out["batches"] = [{"batch": s["batch"], "tool": s["format"][len(CORRECTION_FORMAT_PREFIX):],
                           "rows": s.get("rows")} for s in sources]
    out["classes"] = dict(sorted(out["classes"].items()))
    return out
