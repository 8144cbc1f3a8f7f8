"""Task results cached as plain JSON in the workspace, instead of Prefect's persisted results
(whose records name their own serializer, so a planted record is unpickled on the next run).
Reading a cache entry is `json.loads` and nothing else: whoever can write the workspace can
at worst make a run report stale numbers, never run code.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)


def cache_key(fn: Callable, inputs: dict) -> str:
    """sha256 of the function's source and its JSON inputs (like Prefect's INPUTS + TASK_SOURCE)."""
    h = hashlib.sha256(inspect.getsource(fn).encode())
    h.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _path(folder: Path, name: str, key: str) -> Path:
    return folder / f"{name}-{key}.json"


def read(folder: Path, name: str, key: str) -> Optional[Any]:
    """The cached value, or None when absent or unreadable (a broken entry is a cache miss)."""
    path = _path(folder, name, key)
    try:
        return json.loads(path.read_text())["value"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("ignoring the unreadable cached result %s", path)
        return None


def write(folder: Path, name: str, key: str, value: Any) -> None:
    """Store `value` (JSON-ready) atomically: a kill leaves the old entry or none."""
    folder.mkdir(parents=True, exist_ok=True)
    path = _path(folder, name, key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"value": value}, default=str))
    os.replace(tmp, path)
