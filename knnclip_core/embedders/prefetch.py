"""Background iteration, the one-BLAS-thread rule and the forkserver shared by the embedding workers."""
from __future__ import annotations

import multiprocessing
import queue
import threading
from typing import Iterator, Sequence

_BLAS_LIMIT = []  # keeps the worker's threadpool limit alive


def one_blas_thread(_worker_id: int = 0) -> None:
    """DataLoader worker start: one BLAS thread. Preparation runs one process per core, and
    OpenBLAS threads spinning against each other (and a loaded machine) made the per-image
    mask pooling three times slower than single-threaded."""
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT.append(threadpool_limits(1, user_api="blas"))


def worker_context(preload: Sequence[str]):
    """The forkserver context for worker processes (forking a process that holds LanceDB's
    runtime or a CUDA context is unsafe), asking the server to import `preload` once when it
    starts: every worker forked from it then begins with those modules loaded instead of
    importing them itself (seconds for torch, paid per worker and per job). The server is
    one per process and starts on first use, so the first job's list is the one that holds."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", *preload])
    return ctx


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(iterable, depth: int = 2) -> Iterator:
    """Iterate `iterable` in a background thread, at most `depth` items ahead: decoding
    (PIL and numpy release the GIL) overlaps the model's forward without worker processes."""
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def produce() -> None:
        try:
            for x in iterable:
                while not stop.is_set():
                    try:
                        q.put(x, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer
            q.put(_Raised(exc))

    thread = threading.Thread(target=produce, name="knnclip-prefetch", daemon=True)
    thread.start()
    try:
        while (x := q.get()) is not done:
            if isinstance(x, _Raised):
                raise x.exc
            yield x
    finally:
        stop.set()
