"""One writer at a time on a workspace's memory (curate and forget take this lock)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..locks import workspace_lock
from ..workspace import Workspace

LOCK_NAME = "memory.lock"


@contextmanager
def memory_lock(ws: Workspace, timeout_s: float = 0.0, what: str = "curation") -> Iterator[None]:
    """Hold the workspace memory lock for the `with` body; waits up to `timeout_s` seconds,
    then raises BusyError."""
    with workspace_lock(ws, LOCK_NAME, timeout_s, what, guards=f"the memory at {ws.memory_uri}"):
        yield
