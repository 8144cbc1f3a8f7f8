"""Per-mask means of host features (classic) computed in worker processes that import no torch.

A host-feature preparer makes and pools its channels on the CPU, so only small (n, C) means
leave a worker. The workers are plain processes from a forkserver (forking a process that holds
LanceDB's runtime or a CUDA context is unsafe) that need numpy, scipy and the preparer's
module only, imported once by the server (`prefetch.worker_context`): a worker that imports
torch itself spends seconds on it before its first image.
Images go out in chunks, a bounded number in flight, and come back in order.
"""
from __future__ import annotations

import collections
import contextlib
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator, Optional, Sequence

import numpy as np

from .base import Preparer
from .prefetch import one_blas_thread, prefetch, worker_context
from .rle_weights import rle_area_weights

CHUNK = 4  # images per task: few enough to keep both cores busy to the end
IN_FLIGHT = 3  # chunks queued per worker

_PREP: list[Preparer] = []  # the worker's preparer (set by _start)


def item_weights(prep: Preparer, item) -> np.ndarray:
    """(n, cells) area weights of a WorkItem's masks on the preparer's grid (RLE or decoded)."""
    if item.masks is not None:
        return prep.mask_weights_of(item.masks, item.height, item.width)
    return rle_area_weights(item.masks_rle, item.height, item.width, prep.grid_hw(item.height, item.width))


def image_failure(item, exc: Exception) -> str:
    """Why one WorkItem could not be prepared, in words (the caller names the file)."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, FileNotFoundError):
        return f"missing file {item.path}"
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (PIL cannot identify its format)"
    return f"{type(exc).__name__}: {exc}"


def pooled_or_error(prep: Preparer, item) -> tuple[Optional[np.ndarray], Optional[str]]:
    """(n, C) pooled means of one WorkItem's masks, or None and why the image failed."""
    try:
        return prep.read_pooled(item.path, item.height, item.width, item_weights(prep, item)), None
    except Exception as exc:  # missing, unreadable image or bad mask: report it, keep going
        return None, image_failure(item, exc)


def _start(prep: Preparer) -> None:
    one_blas_thread()
    _PREP.append(prep)


def _run_chunk(chunk: list) -> list[tuple[Optional[np.ndarray], Optional[str]]]:
    return [pooled_or_error(_PREP[0], item) for item in chunk]


def iter_host_pooled(prep: Preparer, items: Sequence, num_workers: int
                     ) -> Iterator[tuple[int, Optional[np.ndarray], Optional[str]]]:
    """(position, pooled means or None, error or None) for every item, in order; `num_workers`
    processes (0: one background thread in this process)."""
    if num_workers <= 0:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):  # see prefetch.one_blas_thread
            yield from prefetch((i, *pooled_or_error(prep, it)) for i, it in enumerate(items))
        return
    chunks = [list(range(i, min(i + CHUNK, len(items)))) for i in range(0, len(items), CHUNK)]
    pool = ProcessPoolExecutor(num_workers, mp_context=worker_context([__name__, type(prep).__module__]),
                               initializer=_start, initargs=(prep,))
    pending: collections.deque = collections.deque()
    try:
        for idx in chunks:
            pending.append((idx, pool.submit(_run_chunk, [items[i] for i in idx])))
            while len(pending) > IN_FLIGHT * num_workers:
                yield from _drain(pending.popleft())
        while pending:
            yield from _drain(pending.popleft())
    finally:
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)


def _drain(entry) -> Iterator[tuple[int, Optional[np.ndarray], Optional[str]]]:
    idx, future = entry
    for i, (pooled, error) in zip(idx, future.result()):
        yield i, pooled, error
