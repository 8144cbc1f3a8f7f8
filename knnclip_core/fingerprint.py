"""Cheap fingerprints of sources on disk, to tell a new batch from one already ingested."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def source_fingerprint(path: str | Path) -> str:
    """sha256 over the relative paths, sizes and modification times of every file under
    `path` (or of the file itself). Changes when a file is added, removed or rewritten."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        rel = f.name if f == path else str(f.relative_to(path))
        h.update(f"{rel}\0{st.st_size}\0{int(st.st_mtime_ns)}\n".encode())
    if path.is_file():
        h.update(os.fsencode(path.name))
    return h.hexdigest()
