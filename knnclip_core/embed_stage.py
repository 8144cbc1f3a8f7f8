"""The embed stage: every catalog segment not yet in the memory table of an embedder is
embedded (each image decoded once, all its masks pooled from one forward) and written in
chunks, so a rerun does only what is missing and a kill loses at most one chunk.

It joins the catalog, the embedders and the memory, so it lives above all three."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import timezone
from typing import Optional

from .catalog.models import ClassName, Dataset, Image, Segment
from .catalog.store import session_scope
from .config import Settings
from .embedders import embedder_provenance, get_embedder
from .embedders.base import Embedder
from .embedders.loader import WorkItem, iter_embeddings
from .memory.lock import creation_lock
from .memory.table import MemoryTable, make_rows
from .progress import ProgressArg
from .workspace import Workspace

logger = logging.getLogger(__name__)

MAX_NAMED_MISSING = 20  # image paths named in the summary


def in_shard(image_sha256: str, shard: tuple[int, int]) -> bool:
    """True when the image belongs to shard `i` of `n` (by its content hash)."""
    i, n = shard
    assert 0 <= i < n, shard
    return n == 1 or int(image_sha256[:8], 16) % n == i


def pending_work(ws: Workspace, done_ids: set[str], shard: tuple[int, int] = (0, 1)) -> tuple[list[WorkItem], int, int]:
    """Catalog segments of images in `shard` (index, count) whose id is not in `done_ids`,
    grouped by image.

    Returns (work items, segments in the catalog, segments skipped as already embedded).
    Each item's `meta` holds the row metadata of its masks, in mask order.
    """
    from sqlmodel import select

    by_image: "OrderedDict[str, WorkItem]" = OrderedDict()
    total = skipped = 0
    with session_scope(ws.catalog_url) as s:
        stmt = (select(Segment, Image.path, Image.width, Image.height, ClassName.name, Dataset.name)
                .join(Image, Image.sha256 == Segment.image_sha256)
                .join(ClassName, ClassName.id == Segment.class_id)
                .join(Dataset, Dataset.id == Segment.dataset_id)
                .order_by(Segment.image_sha256, Segment.id))
        for seg, path, width, height, class_name, dataset in s.exec(stmt):
            if not in_shard(seg.image_sha256, shard):
                continue
            total += 1
            if seg.id in done_ids:
                skipped += 1
                continue
            item = by_image.get(seg.image_sha256)
            if item is None:
                item = by_image[seg.image_sha256] = WorkItem(key=seg.image_sha256, path=path, height=height,
                                                             width=width, masks_rle=[])
            item.masks_rle.append(seg.mask_rle)
            created = seg.created if seg.created.tzinfo else seg.created.replace(tzinfo=timezone.utc)
            item.meta.append({"id": seg.id, "class_id": seg.class_id, "class_name": class_name,
                              "dataset": dataset, "batch_id": seg.batch_id, "image_sha256": seg.image_sha256,
                              "area": seg.area, "ingested_at": created})
    return list(by_image.values()), total, skipped


def run_embed(settings: Settings, backbone: Optional[str] = None, device: Optional[str] = None,
              batch_size: Optional[int] = None, num_workers: Optional[int] = None,
              chunk_segments: Optional[int] = None, progress: ProgressArg = False,
              embedder: Optional[Embedder] = None, shard: tuple[int, int] = (0, 1)) -> dict:
    """Embed every catalog segment missing from the memory table of `backbone`; with
    `shard=(i, n)` only the images of shard i of n (for parallel workers); `progress` as
    knnclip_core.progress.progress_for takes it.

    Arguments default to `settings.embed`. Returns a summary dict: images, segments,
    embedded, skipped_existing, failed_images, missing_images (paths, at most 20 named),
    seconds, embedder_id, table, backbone, device. Raises WeightsNotFoundError,
    UnknownBackboneError, EmbedderMismatchError.
    """
    cfg = settings.embed
    t0 = time.perf_counter()
    ws = Workspace.from_settings(settings).ensure()
    emb = embedder or get_embedder(backbone or cfg.backbone, device=device or cfg.device, settings=settings)
    with creation_lock(ws):
        table = MemoryTable.open(ws.memory_uri, emb.id, emb.dim, provenance=embedder_provenance(embedder=emb))
    items, total, skipped = pending_work(ws, table.ids(), shard)
    chunk = max(1, chunk_segments or cfg.chunk_segments)
    n_segments = sum(len(it.meta) for it in items)
    logger.info("embed %s: %d segments of %d images to do, %d already embedded",
                emb.name, n_segments, len(items), skipped)

    embedded, failed, missing = 0, 0, []
    pending_vecs, pending_meta = [], []

    def flush():
        nonlocal embedded, pending_vecs, pending_meta
        if pending_meta:
            import numpy as np

            table.insert_missing(make_rows(emb.id, np.concatenate(pending_vecs), pending_meta))
            embedded += len(pending_meta)
            pending_vecs, pending_meta = [], []

    for item, vecs, error in iter_embeddings(emb, items, batch_size=batch_size or cfg.batch_size,
                                             num_workers=cfg.num_workers if num_workers is None else num_workers,
                                             progress=progress):
        if error is not None:
            failed += 1
            if len(missing) < MAX_NAMED_MISSING:
                missing.append(f"{item.path} ({error})" if not error.startswith("missing file") else item.path)
            logger.warning("embed: skipping image %s: %s", item.path, error)
            continue
        pending_vecs.append(vecs)
        pending_meta.extend(item.meta)
        if len(pending_meta) >= chunk:
            flush()
    flush()
    return {
        "backbone": emb.name,
        "device": emb.device,
        "embedder_id": emb.id,
        "table": table.name,
        "images": len(items),
        "segments": total,
        "embedded": embedded,
        "skipped_existing": skipped,
        "failed_images": failed,
        "missing_images": missing,
        "rows": table.count(),
        "seconds": round(time.perf_counter() - t0, 3),
    }
