"""`memory stats` (what each memory holds) and `memory history` (curation runs, forget rules)."""
from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Optional

from sqlmodel import select as sql_select

from ..catalog import CurationRun, session_scope
from ..workspace import Workspace
from ..index.choice import flat_bytes
from .budget import bytes_per_vector
from .forget import list_rules
from .published import latest_memory_tag
from .resolve import memory_embedder_ids, resolve_embedder_id
from .table import CONFLICT, DUPLICATE, KEPT, STATES, MemoryTable

logger = logging.getLogger(__name__)


def table_stats(ws: Workspace, embedder_id: str) -> dict:
    """Counts by state, overall and per class, at the table's latest version; bytes of the
    index the KEPT rows would publish; the latest curation/forget tag."""
    mt = MemoryTable.open(ws.memory_uri, embedder_id, create=False)
    rows = mt.table.search().select(["class_name", "state"]).limit(None).to_arrow()
    pairs = list(zip(rows.column("class_name").to_pylist(), rows.column("state").to_pylist()))
    per_class: dict[str, dict[str, int]] = {}
    for (c, s), v in sorted(Counter(pairs).items()):
        per_class.setdefault(c, {"rows": 0})[s] = v
        per_class[c]["rows"] += v
    counts = {s: sum(1 for _, st in pairs if st == s) for s in STATES}
    bpv = bytes_per_vector(mt.dim)
    lance = mt.table.stats()
    tags = mt.table.tags.list()
    tag = latest_memory_tag(tags)
    return {"embedder_id": embedder_id, "table": mt.name, "dim": mt.dim, "rows": len(pairs), "counts": counts,
            "duplicates": counts[DUPLICATE], "conflicts": counts[CONFLICT], "classes": len(per_class),
            "per_class": per_class, "bytes_per_vector": bpv, "kept_index_bytes": flat_bytes(counts[KEPT], mt.dim),
            "table_bytes": lance.get("total_bytes"), "fragments": lance["fragment_stats"]["num_fragments"],
            "lance_version": mt.table.version, "latest_tag": tag,
            "latest_tag_version": tags[tag]["version"] if tag else None}


def memory_stats(ws: Workspace, backbone: Optional[str] = None) -> dict:
    """Stats of one memory (backbone name or embedder id) or of all of them: {memories: [...]}."""
    ids = [resolve_embedder_id(ws, backbone)] if backbone else memory_embedder_ids(ws)
    return {"memories": [table_stats(ws, e) for e in ids]}


def memory_history(ws: Workspace, embedder_id: Optional[str] = None) -> dict:
    """Curation runs (newest last) with params, versions, tags and counts; and the forget rules."""
    with session_scope(ws.catalog_url) as s:
        q = sql_select(CurationRun).order_by(CurationRun.id)
        if embedder_id:
            q = q.where(CurationRun.embedder_id == embedder_id)
        runs = []
        for r in s.exec(q):
            report = json.loads(r.report_json or "{}")
            runs.append({"run_id": r.id, "embedder_id": r.embedder_id, "table": r.table_name, "status": r.status,
                         "lance_version": r.lance_version, "lance_tag": r.lance_tag,
                         "params": json.loads(r.params_json or "{}"), "counts": report.get("counts"),
                         "changed_rows": report.get("changed_rows"), "error": report.get("error"),
                         "started": r.started.isoformat(), "finished": r.finished.isoformat() if r.finished else None})
    return {"runs": runs, "forget_rules": list_rules(ws)}
