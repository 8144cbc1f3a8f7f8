"""Which memory table a command works on: backbone name or embedder id -> embedder id."""
from __future__ import annotations

import logging
from typing import Optional

from ..errors import InputError
from ..workspace import Workspace
from .table import EMBEDDER_KEY, connect, list_table_names, table_name_for

logger = logging.getLogger(__name__)


def memory_embedder_ids(ws: Workspace) -> list[str]:
    """Embedder ids of every memory table in the workspace, sorted."""
    if not ws.memory_dir.is_dir():
        return []
    db = connect(ws.memory_dir)
    ids = []
    for name in list_table_names(db):
        if not name.startswith("memory_"):
            continue
        meta = db.open_table(name).schema.metadata or {}
        if EMBEDDER_KEY in meta:
            ids.append(meta[EMBEDDER_KEY].decode())
    return sorted(ids)


def _id_from_embedders(name: str) -> str:
    """The embedder id of backbone `name` (imported here: the embedders package writes memory tables)."""
    from ..embedders import embedder_id_for

    return embedder_id_for(name)


def resolve_embedder_id(ws: Workspace, backbone: Optional[str] = None) -> str:
    """Embedder id for `backbone`: an embedder id, a backbone name, or None (the only table).

    Raises InputError when there is no memory, when None is ambiguous (several tables), or
    when no table matches the name.
    """
    present = memory_embedder_ids(ws)
    if not present:
        raise InputError(f"there is no memory in {ws.memory_dir}; run `knnclip embed` first")
    if backbone is None:
        if len(present) == 1:
            return present[0]
        raise InputError(f"the workspace holds {len(present)} memories ({', '.join(present)}); name one with --backbone")
    if backbone in present or table_name_for(backbone) in list_table_names(connect(ws.memory_dir)):
        return backbone  # an embedder id (MemoryTable.open checks the table's metadata)
    by_family = [e for e in present if backbone in e.split("|")]
    if len(by_family) == 1:
        return by_family[0]
    try:
        eid = _id_from_embedders(backbone)
    except Exception as exc:  # unknown name, weights missing, ...
        logger.debug("embedder %s not resolved: %s", backbone, exc)
        eid = None
    if eid in present:
        return eid
    raise InputError(f"no memory for backbone {backbone!r} (memories: {', '.join(present)})")
