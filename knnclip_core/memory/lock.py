"""One writer at a time on a workspace's memory: an fcntl lock file in `ws.lock_dir`."""
from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from typing import Iterator

from ..errors import BusyError
from ..workspace import Workspace

logger = logging.getLogger(__name__)

LOCK_NAME = "memory.lock"


@contextmanager
def memory_lock(ws: Workspace, timeout_s: float = 0.0, what: str = "curation") -> Iterator[None]:
    """Hold the workspace memory lock (curate and forget take it) for the `with` body.

    Waits up to `timeout_s` seconds (0: do not wait). Raises BusyError when another
    process keeps holding it. The lock is released when the process dies, so a killed
    run never leaves it stuck.
    """
    ws.lock_dir.mkdir(parents=True, exist_ok=True)
    path = ws.lock_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(0.0, timeout_s)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                    raise BusyError(f"the memory of {ws.home} is busy ({holder}); "
                                    f"try again when that run finishes") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} run by pid {os.getpid()}".encode(), 0)
        logger.debug("memory lock taken: %s", path)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
