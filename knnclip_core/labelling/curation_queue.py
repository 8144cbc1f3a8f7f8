"""Curation's doubts queued for labelling: rows the last curation left out as label
conflicts (near-identical to a row of another class) or near-duplicates, one capture per
image with the catalog's mask of each such row and its current class."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
from pycocotools import mask as mask_utils
from sqlmodel import select

from ..catalog import ClassName, Image, Segment, session_scope
from ..memory.table import CONFLICT, DUPLICATE, MemoryTable
from ..readers.safe_files import open_image_header, open_regular
from .capture import CaptureStore

logger = logging.getLogger(__name__)

REASON_OF = {CONFLICT: "label_conflict", DUPLICATE: "near_duplicate"}


def read_rgb(path, max_pixels: int) -> np.ndarray:
    """RGB uint8 pixels of a catalogued image (its size checked from the header first)."""
    with open_regular(path) as f, open_image_header(f, path, max_pixels) as im:
        return np.asarray(im.convert("RGB"))


def queue_curation(settings, ws, store: CaptureStore, backbone: Optional[str] = None, limit: int = 200) -> dict:
    """Add captures for the conflict and duplicate rows of the memory of `backbone`
    (default: the configured one); at most `limit` images. Returns counts."""
    from ..memory.resolve import resolve_embedder_id

    eid = resolve_embedder_id(ws, backbone, configured=settings.embed.backbone)
    mt = MemoryTable.open(ws.memory_uri, eid, create=False)
    rows = mt.table.to_arrow().select(["id", "state", "state_reason", "class_name"]).to_pylist()
    doubtful = {r["id"]: r for r in rows if r["state"] in REASON_OF}
    by_image: dict[str, list] = {}
    with session_scope(ws.catalog_url) as s:
        segs = s.exec(select(Segment, ClassName.name).join(ClassName, Segment.class_id == ClassName.id)
                      .where(Segment.id.in_(list(doubtful)))).all() if doubtful else []
        images = {i.sha256: i for i in s.exec(select(Image).where(
            Image.sha256.in_(list({seg.image_sha256 for seg, _ in segs})))).all()} if segs else {}
        for seg, name in segs:
            by_image.setdefault(seg.image_sha256, []).append((seg.id, seg.mask_rle, name))
    counts = {"queued": 0, "label_conflict": 0, "near_duplicate": 0, "table": mt.name}
    for sha, items in sorted(by_image.items())[:limit]:
        img = images.get(sha)
        try:
            pixels = read_rgb(Path(img.path), settings.ingest.max_pixels)
        except Exception as exc:  # the image moved or went away: nothing to show an annotator
            logger.warning("image %s of queued rows is unreadable, skipped: %s", getattr(img, "path", sha), exc)
            continue
        h, w = pixels.shape[:2]
        entries = []
        for k, (sid, rle, name) in enumerate(items):
            reason = REASON_OF[doubtful[sid]["state"]]
            counts[reason] += 1
            m = mask_utils.decode({"size": [h, w], "counts": rle.encode()})
            x, y, bw, bh = (int(v) for v in mask_utils.toBbox({"size": [h, w], "counts": rle.encode()}))
            entries.append({"index": k, "reasons": [reason], "mask_rle": rle, "area": int(np.count_nonzero(m)),
                            "bbox": [x, y, bw, bh], "class": name, "proposed_class": name, "score": 0.0,
                            "confidence": 0.0, "fused": False, "scores": {}, "segment_id": sid,
                            "note": doubtful[sid]["state_reason"],
                            "neighbours": [{"row": -1, "similarity": None, "segment_id": sid}]})
        cid = store.add(pixels, {"release": {"version": None, "alias": None}, "source": "curation", "name": img.path,
                                 "scale": 1.0, "classes": sorted({e["class"] for e in entries}),
                                 "height": h, "width": w, "segments": entries})
        counts["queued"] += cid is not None
    return counts
