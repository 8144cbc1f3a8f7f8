"""Named workspace locks, released when the holder process dies, so a killed run never
leaves one stuck: a PostgreSQL advisory lock when the workspace has a shared lock database
(KNNCLIP_LOCK_URL, else a PostgreSQL catalog), so that every machine sharing it
serialises; otherwise an fcntl lock file in `ws.lock_dir` (one machine)."""
from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import BusyError
from .pg_lock import advisory_lock
from .workspace import Workspace

logger = logging.getLogger(__name__)


@contextmanager
def workspace_lock(ws: Workspace, name: str, timeout_s: float = 0.0, what: str = "a run",
                   guards: str = "the workspace") -> Iterator[None]:
    """Hold the lock `name` for the `with` body: the advisory lock of `name` in
    `ws.shared_lock_url` when there is one, else the lock file `ws.lock_dir / name`.

    Waits up to `timeout_s` seconds (0: do not wait). Raises BusyError naming `guards`
    and the holder when another process keeps holding it; KnnclipError when the lock
    database cannot be reached.
    """
    if ws.shared_lock_url:
        with advisory_lock(ws.shared_lock_url, name, timeout_s, what, guards):
            yield
        return
    ws.lock_dir.mkdir(parents=True, exist_ok=True)
    path = ws.lock_dir / name
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
                    raise BusyError(f"{guards} is busy ({holder}); try again when that run finishes") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} run by pid {os.getpid()}".encode(), 0)
        logger.debug("lock taken: %s", path)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
