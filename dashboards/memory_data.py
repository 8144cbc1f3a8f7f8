"""Rows of a memory table a person wants to look at: label conflicts and near-duplicates as
pairs of segments (with the catalog's crops), and a 2-D PCA projection of a bounded sample of
the vectors. Read-only."""
from __future__ import annotations

import logging
import re

import numpy as np

from knnclip_core.catalog.queries import segment_sources
from knnclip_core.memory.table import CONFLICT, DUPLICATE, MemoryTable
from knnclip_core.workspace import Workspace

from .images import crops

logger = logging.getLogger(__name__)

MAX_PAIRS = 12  # pairs of each kind shown per memory
PROJECTION_SAMPLE = 1500  # points drawn in the projection
PROJECTION_READ = 5000  # rows read to draw the sample from (bounds the page's cost)
PARTNER_RE = re.compile(r"^(?:duplicate_of|conflict_with):([0-9A-Za-z_-]+)(?:\((.*)\))?$")


def curation_pairs(ws: Workspace, embedder_id: str, max_pixels: int, max_pairs: int = MAX_PAIRS) -> dict:
    """{'conflict': [...], 'duplicate': [...]} of at most `max_pairs` each: {id, class, partner,
    partner_class, crop, partner_crop} (crops are data URIs or None when the image is unreadable)."""
    mt = MemoryTable.open(ws.memory_uri, embedder_id, create=False)
    out: dict = {CONFLICT: [], DUPLICATE: []}
    for state in (CONFLICT, DUPLICATE):
        rows = (mt.table.search().where(f"state = '{state}'").select(["id", "class_name", "state_reason"])
                .limit(max_pairs).to_arrow().to_pylist())
        for r in rows:
            m = PARTNER_RE.match(r["state_reason"] or "")
            partner = m.group(1) if m else None
            out[state].append({"id": r["id"], "class": r["class_name"], "partner": partner,
                               "partner_class": (m.group(2) if m and m.group(2) else r["class_name"]) if m else None})
    ids = [p[k] for pairs in out.values() for p in pairs for k in ("id", "partner") if p[k]]
    sources = segment_sources(ws.catalog_url, ids)
    uris = crops(sources, ids, max_pixels)
    for pairs in out.values():
        for p in pairs:
            p["crop"], p["partner_crop"] = uris.get(p["id"]), uris.get(p["partner"]) if p["partner"] else None
    return out


def projection(ws: Workspace, embedder_id: str, sample: int = PROJECTION_SAMPLE, read: int = PROJECTION_READ,
               seed: int = 0) -> dict:
    """PCA of at most `sample` vectors (drawn with `seed` from the first `read` rows) to 2-D:
    {'points': [(x, y, class index)], 'classes': [names], 'rows_read', 'explained': [var share of
    PC1, PC2]}. Fewer than 2 rows give no points."""
    mt = MemoryTable.open(ws.memory_uri, embedder_id, create=False)
    tab = mt.table.search().select(["vector", "class_name"]).limit(read).to_arrow()
    n = tab.num_rows
    out = {"points": [], "classes": [], "rows_read": n, "explained": [0.0, 0.0]}
    if n < 2:
        return out
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, sample), replace=False))
    vectors = np.stack(tab.column("vector").to_numpy(zero_copy_only=False)[pick]).astype(np.float64)
    names = [tab.column("class_name")[int(i)].as_py() for i in pick]
    centred = vectors - vectors.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(xy), 1))])
    var = s ** 2
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    out.update(points=[(float(x), float(y), index[c]) for (x, y), c in zip(xy, names)], classes=classes,
               explained=[round(float(v / var.sum()), 4) if var.sum() > 0 else 0.0 for v in var[:2]])
    return out


def inspect_memory(ws: Workspace, embedder_id: str, max_pixels: int) -> dict:
    """{'pairs': curation_pairs, 'projection': projection, 'error': message or None} of one memory."""
    try:
        return {"pairs": curation_pairs(ws, embedder_id, max_pixels), "projection": projection(ws, embedder_id),
                "error": None}
    except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
        logger.exception("memory %s: conflicts or projection unreadable", embedder_id)
        return {"pairs": {CONFLICT: [], DUPLICATE: []}, "projection": None, "error": str(exc) or type(exc).__name__}
