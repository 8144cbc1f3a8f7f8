"""Memory locks: one writer at a time on a workspace's memory (curate and forget), and one opener at a time where a table may be created (embed)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..locks import workspace_lock
from ..workspace import Workspace

LOCK_NAME = "memory.lock"
CREATE_LOCK_NAME = "memory-create.lock"


@contextmanager
def memory_lock(ws: Workspace, timeout_s: float = 0.0, what: str = "curation") -> Iterator[None]:
    """Hold the workspace memory lock for the `with` body; waits up to `timeout_s` seconds,
    then raises BusyError."""
    with workspace_lock(ws, LOCK_NAME, timeout_s, what, guards=f"the memory at {ws.memory_uri}"):
        yield


@contextmanager
def creation_lock(ws: Workspace, timeout_s: float = 120.0) -> Iterator[None]:
    """Held while a writer opens, and perhaps creates, a memory table: two machines creating the
    same table at once both commit a creation, and the later one (an overwrite) wipes the rows
    the other has merged meanwhile. Held for the open only, so embeds still run side by side."""
    with workspace_lock(ws, CREATE_LOCK_NAME, timeout_s, "embed (opening the memory table)",
                        guards=f"the creation of memory tables at {ws.memory_uri}"):
        yield
