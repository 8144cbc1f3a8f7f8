"""Batched embedding of many images: decode + resize + mask weights in DataLoader workers
(mask weights straight from the RLE, see `rle_weights`),
one forward per batch of same-size images on the device, one matrix product per image.

`iter_embeddings(embedder, items, batch_size, num_workers)` yields `(item, vectors, error)`
in batch order; `vectors` is (n_masks, D) float32 or None when the image failed.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from ..progress import ProgressArg, progress_for
from .base import Embedder, Preparer
from .host_workers import CHUNK, image_failure, item_weights, iter_host_pooled
from .prefetch import one_blas_thread, prefetch, worker_context

logger = logging.getLogger(__name__)


@dataclass
class WorkItem:
    """One image to embed: its file, size, and masks (COCO RLE counts strings or arrays)."""

    key: str
    path: str
    height: int
    width: int
    masks_rle: Sequence[str] = ()
    masks: Optional[Sequence[np.ndarray]] = None  # decoded masks instead of RLE
    meta: list = field(default_factory=list)  # caller's per-mask payload, returned untouched


class _Prepared:
    """torch Dataset over WorkItems; each sample is prepared on the CPU (in a worker)."""

    def __init__(self, prep: Preparer, items: Sequence[WorkItem]):
        self.prep, self.items = prep, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        try:
            x = self.prep.read(item.path, item.height, item.width)
            w = item_weights(self.prep, item)
            return {"index": i, "x": x, "weights": w, "error": None}
        except Exception as exc:  # missing or unreadable image: report it, keep going
            return {"index": i, "error": image_failure(item, exc)}


def _collate(samples: list[dict]) -> dict:
    import torch

    ok = [s for s in samples if s["error"] is None]
    return {"x": torch.from_numpy(np.stack([s["x"] for s in ok])) if ok else None,
            "ok": [(s["index"], s["weights"]) for s in ok],
            "failed": [(s["index"], s["error"]) for s in samples if s["error"] is not None]}


def size_batches(embedder: Embedder, items: Sequence[WorkItem], batch_size: int) -> list[list[int]]:
    """Indices grouped by the embedder's feature grid for each image size (stable order
    within a size), cut into batches of at most `batch_size`."""
    assert batch_size >= 1, batch_size
    by_key: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        by_key.setdefault(embedder.grid_hw(it.height, it.width), []).append(i)
    return [idx[j:j + batch_size] for idx in by_key.values() for j in range(0, len(idx), batch_size)]


def auto_workers(device: str, host_features: bool = False) -> int:
    """DataLoader workers worth starting: on CUDA up to 8 (decoding overlaps the GPU: on an
    H200 with 16 cores, 8 workers fed 661 CamVid images/s against 344 with 4); on
    the CPU only the cores the model's threads leave idle, since a worker decoding on a
    core the model uses slows the model down by as much as it saves. With `host_features`
    (the preparer computes the features itself, e.g. classic) the main process only
    finalises small pooled means, so every core (4 at most) prepares."""
    import torch

    cores = os.cpu_count() or 1
    if host_features:
        return min(4, cores) if cores > 1 else 0
    if device.startswith("cuda"):
        return min(8, max(1, cores - 1))
    return max(0, min(4, cores - torch.get_num_threads()))


def iter_embeddings(embedder: Embedder, items: Sequence[WorkItem], batch_size: int = 16,
                    num_workers: Optional[int] = 0, progress: ProgressArg = False) -> Iterator[tuple[WorkItem, Optional[np.ndarray], Optional[str]]]:
    """Embed every mask of every item; yields (item, (n, D) vectors or None, error or None).
    `progress` (see knnclip_core.progress.progress_for) counts segments."""
    batches = size_batches(embedder, items, batch_size)
    host = embedder.prep.features_on_host
    if num_workers is None:
        num_workers = auto_workers(embedder.device, host)
    num_workers = min(num_workers, len(batches) if not host else -(-len(items) // CHUNK))  # start-up is not free
    if num_workers > 0 and multiprocessing.current_process().daemon:
        logger.info("decoding in process: a daemonic process (e.g. a Dask worker) cannot start worker processes")
        num_workers = 0
    bar = progress_for(progress, sum(len(it.masks_rle) for it in items), "embed", "segments", rate_unit="seg")
    try:
        if host:
            yield from _host_embeddings(embedder, [items[i] for b in batches for i in b], num_workers, bar)
        else:
            yield from _device_embeddings(embedder, items, batches, num_workers, bar)
    finally:
        bar.close()


def _host_embeddings(embedder: Embedder, items: Sequence[WorkItem], num_workers: int, bar):
    """Host features: pooled where they are made (host_workers), finalised here."""
    for i, pooled, error in iter_host_pooled(embedder.prep, items, num_workers):
        bar.update(len(items[i].masks_rle))
        if error is not None:
            yield items[i], None, error
        else:
            yield items[i], embedder.finalize(pooled) if len(pooled) else np.zeros((0, embedder.dim), np.float32), None


def _device_embeddings(embedder: Embedder, items: Sequence[WorkItem], batches: list[list[int]], num_workers: int, bar):
    """Model features: decoded in DataLoader workers, one forward per batch on the device."""
    import torch
    from torch.utils.data import DataLoader

    # Workers get only the picklable Preparer, forked from a forkserver that has torch and
    # the preparer imported already (start-up grew by about 4 s per worker on the H200).
    loader = DataLoader(_Prepared(embedder.prep, items), batch_sampler=batches, num_workers=num_workers,
                        collate_fn=_collate, pin_memory=embedder.device.startswith("cuda"),
                        multiprocessing_context=worker_context(["torch", __name__, type(embedder.prep).__module__]) if num_workers > 0 else None,
                        worker_init_fn=one_blas_thread if num_workers > 0 else None)
    try:
        for batch in (loader if num_workers > 0 else prefetch(loader)):
            for index, error in batch["failed"]:
                bar.update(len(items[index].masks_rle))
                yield items[index], None, error
            if batch["x"] is None:
                continue
            feats = embedder.forward_batch(batch["x"])
            done = list(zip([index for index, _ in batch["ok"]],
                            embedder.pool_batch(feats, [w for _, w in batch["ok"]])))
            bar.update(sum(len(items[index].masks_rle) for index, _ in done))
            for index, v in done:
                yield items[index], v, None
    finally:
        del loader
        if embedder.device.startswith("cuda"):
            torch.cuda.empty_cache()
