"""Which memory table a command works on: backbone name or embedder id -> embedder id.

A backbone name is matched against each table's stored provenance by comparing backbone
specs field by field (embedders.provenance); tables written before provenance was recorded
are matched by the exact embedder id the backbone has today. Nothing is parsed out of ids.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..errors import InputError
from ..workspace import Workspace
from .table import EMBEDDER_KEY, connect, list_table_names, open_lance_table, stored_provenance, table_name_for

logger = logging.getLogger(__name__)


def memory_records(ws: Workspace) -> dict[str, Optional[dict]]:
    """Embedder id -> stored provenance record (None for old tables) of every memory table."""
    if ws.memory_is_local and not Path(ws.memory_uri).is_dir():
        return {}
    db = connect(ws.memory_uri)
    out = {}
    for name in list_table_names(db):
        if not name.startswith("memory_"):
            continue
        meta = open_lance_table(db, name).schema.metadata or {}
        if EMBEDDER_KEY in meta:
            out[meta[EMBEDDER_KEY].decode()] = stored_provenance(meta, f"memory table {name}")
    return out


def memory_embedder_ids(ws: Workspace) -> list[str]:
    """Embedder ids of every memory table in the workspace, sorted."""
    return sorted(memory_records(ws))


def _match_backbone(records: dict[str, Optional[dict]], backbone: str) -> list[str]:
    """Embedder ids of the tables made by backbone `backbone` (by spec, then weights checksum).

    Raises UnknownBackboneError when the name is not configured, WeightsNotFoundError when
    telling tables apart (or reading an old table's id) needs weights that are missing."""
    from ..embedders import embedder_id_for, get_spec, weights_sha256
    from ..embedders.provenance import same_spec

    spec = get_spec(backbone)
    by_spec = [eid for eid, rec in records.items() if rec is not None and same_spec(rec, spec)]
    if len(by_spec) > 1:  # same spec, different weights files: the checksum decides
        sha = weights_sha256(spec)
        by_spec = [eid for eid in by_spec if records[eid].get("weights_sha256") == sha]
    if by_spec or all(rec is not None for rec in records.values()):
        return by_spec
    eid = embedder_id_for(backbone)  # an old table carries only its id
    return [eid] if eid in records and records[eid] is None else []


def resolve_embedder_id(ws: Workspace, backbone: Optional[str] = None, configured: Optional[str] = None) -> str:
    """Embedder id for `backbone`: an embedder id, a backbone name, or None (the only table;
    with several tables, the one of backbone `configured` when given).

    Raises InputError when there is no memory, when None is ambiguous (several tables), when
    the name is neither an id nor a configured backbone, or when no table matches it;
    WeightsNotFoundError when matching needs weights that are not on this machine.
    """
    from ..embedders import UnknownBackboneError

    records = memory_records(ws)
    present = sorted(records)
    if not present:
        raise InputError(f"there is no memory in {ws.memory_uri}; run `knnclip embed` first")
    if backbone is None:
        if len(present) == 1:
            return present[0]
        if configured:
            return resolve_embedder_id(ws, configured)
        raise InputError(f"the workspace holds {len(present)} memories ({', '.join(present)}); name one with --backbone")
    if backbone in records or table_name_for(backbone) in list_table_names(connect(ws.memory_uri)):
        return backbone  # an embedder id (MemoryTable.open checks the table's metadata)
    try:
        matches = _match_backbone(records, backbone)
    except UnknownBackboneError:
        raise InputError(f"no memory for backbone {backbone!r}: it is neither the embedder id of a memory "
                         f"({', '.join(present)}) nor a configured backbone") from None
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InputError(f"backbone {backbone!r} matches {len(matches)} memories ({', '.join(matches)}); "
                         f"name one by its embedder id")
    raise InputError(f"no memory for backbone {backbone!r} (memories: {', '.join(present)})")
