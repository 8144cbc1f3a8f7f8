"""Read helpers over the catalog for people looking at it: quarantine items (filtered, one by
id) and where a segment's pixels are (image file, bbox, the root its batch was read from).

Nothing here writes; a catalog file that does not exist yet reads as empty."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from sqlalchemy import func
from sqlmodel import select

from .models import ClassName, Dataset, Image, IngestBatch, Quarantine, Segment
from .store import session_scope

SEGMENT_SEP = " :: "  # ingest writes "file :: segment" for a quarantined segment


def catalog_missing(url: str) -> bool:
    """True when `url` is a SQLite file URL whose file does not exist yet (nothing recorded)."""
    if not url.startswith("sqlite:///"):
        return False
    path = url[len("sqlite:///"):]
    return path not in ("", ":memory:") and not Path(path).is_file()


def batch_root(batch: Optional[IngestBatch]) -> str:
    """The folder the batch's reader read from (its recorded 'root'), else its source; '' when unknown."""
    if batch is None:
        return ""
    try:
        params = json.loads(batch.params_json or "{}")
    except ValueError:
        params = {}
    return str(params.get("root") or batch.source or "")


def inside_root(root: str, path: str | Path) -> Optional[Path]:
    """`path` resolved when it is a file under `root` (resolved, links followed), else None."""
    if not root:
        return None
    try:
        base = Path(root).resolve()
        full = (base / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
        return full if full.is_relative_to(base) and full.is_file() else None
    except (OSError, ValueError):
        return None


def _item_dict(q: Quarantine, batch: Optional[IngestBatch], dataset: str) -> dict:
    file, _, segment = q.item.partition(SEGMENT_SEP)
    root = batch_root(batch)
    return {"id": q.id, "batch": q.batch_id, "dataset": dataset, "item": q.item, "file": file,
            "segment": segment or None, "reason": q.reason, "message": q.message,
            "created": q.created.isoformat(), "root": root}


def quarantine_items(url: str, batch: Optional[str] = None, reason: Optional[str] = None,
                     limit: int = 100, offset: int = 0) -> dict:
    """{'total': matching items, 'items': [{id, batch, dataset, item, file, segment, reason, message,
    created, root}] (oldest first, `offset`/`limit` applied), 'reasons': {reason: count} of the batch filter}."""
    out: dict = {"total": 0, "items": [], "reasons": {}}
    if catalog_missing(url):
        return out
    with session_scope(url) as s:
        where = []
        if batch:
            where.append(Quarantine.batch_id == batch)
        by_reason = select(Quarantine.reason, func.count()).where(*where).group_by(Quarantine.reason)
        out["reasons"] = {r: int(n) for r, n in sorted(s.exec(by_reason).all())}
        if reason:
            where.append(Quarantine.reason == reason)
        out["total"] = int(s.exec(select(func.count()).select_from(Quarantine).where(*where)).one())
        rows = s.exec(select(Quarantine, IngestBatch, Dataset)
                      .join(IngestBatch, IngestBatch.id == Quarantine.batch_id, isouter=True)
                      .join(Dataset, Dataset.id == IngestBatch.dataset_id, isouter=True)
                      .where(*where).order_by(Quarantine.id).offset(max(0, offset)).limit(max(0, limit))).all()
        out["items"] = [_item_dict(q, b, d.name if d else "") for q, b, d in rows]
    return out


def quarantine_item(url: str, item_id: int) -> Optional[dict]:
    """One quarantine item as in `quarantine_items`, or None when there is no such id."""
    if catalog_missing(url):
        return None
    with session_scope(url) as s:
        q = s.get(Quarantine, int(item_id))
        if q is None:
            return None
        batch = s.get(IngestBatch, q.batch_id)
        ds = s.get(Dataset, batch.dataset_id) if batch else None
        return _item_dict(q, batch, ds.name if ds else "")


def segment_sources(url: str, ids: Iterable[str]) -> dict[str, dict]:
    """{segment id: {class, image_path, root, bbox (x, y, w, h), width, height}} of the ids the
    catalog knows (unknown ids are left out)."""
    wanted = sorted({str(i) for i in ids if i})
    if not wanted or catalog_missing(url):
        return {}
    out = {}
    with session_scope(url) as s:
        for start in range(0, len(wanted), 500):
            rows = s.exec(select(Segment, Image, IngestBatch, ClassName)
                          .join(Image, Image.sha256 == Segment.image_sha256)
                          .join(IngestBatch, IngestBatch.id == Image.batch_id, isouter=True)
                          .join(ClassName, ClassName.id == Segment.class_id, isouter=True)
                          .where(Segment.id.in_(wanted[start:start + 500]))).all()
            for seg, img, batch, cls in rows:
                out[seg.id] = {"class": cls.name if cls else "", "image_path": img.path, "root": batch_root(batch),
                               "bbox": (seg.bbox_x, seg.bbox_y, seg.bbox_w, seg.bbox_h),
                               "width": img.width, "height": img.height}
    return out
