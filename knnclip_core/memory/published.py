"""What will be published: the KEPT rows of a memory at a curation (or forget) tag."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..workspace import Workspace
from .plan import vectors_of
from .table import KEPT, MemoryTable, connect, open_lance_table

logger = logging.getLogger(__name__)

MEMORY_TAG = re.compile(r"^(curation|forget)-(\d+)")


@dataclass
class KeptMemory:
    """KEPT rows, sorted by id: ids, vectors (n, D) float32 L2-normalised, one class name,
    class id, batch id, dataset and image sha256 per row, and where they were read from."""

    ids: list[str]
    vectors: np.ndarray
    class_names: list[str]
    class_ids: np.ndarray
    batch_ids: list[str]
    datasets: list[str]
    lance_version: int
    lance_tag: str
    embedder_id: str = ""
    table_name: str = ""
    vocabulary: list[str] = field(default_factory=list)  # sorted distinct class names
    provenance: Optional[dict] = None  # the table's provenance record (None: written before it was kept)
    image_ids: list[str] = field(default_factory=list)  # image sha256 per row (the calibration splits by image)

    def __len__(self) -> int:
        return len(self.ids)


def latest_memory_tag(tags: dict) -> Optional[str]:
    """Newest tag written by curate (`curation-<run>`) or forget (`forget-<rule>`), by version."""
    cands = [(info["version"], m.group(1) == "forget", int(m.group(2)), name)
             for name, info in tags.items() if (m := MEMORY_TAG.match(name))]
    return max(cands)[3] if cands else None


def load_kept(ws: Workspace, embedder_id: str, tag: Optional[str] = None) -> KeptMemory:
    """KEPT rows of the memory of `embedder_id` at `tag` (default: the latest curation or
    forget tag). Raises InputError when there is no curated version or the tag is unknown,
    EmbedderMismatchError when the table holds another embedder, FileNotFoundError when
    there is no memory for it."""
    mt = MemoryTable.open(ws.memory_uri, embedder_id, create=False)
    tags = mt.table.tags.list()
    if tag is None:
        tag = latest_memory_tag(tags)
        if tag is None:
            raise InputError(f"the memory of {embedder_id!r} was never curated; run `knnclip curate` first")
    elif tag not in tags:
        raise InputError(f"the memory of {embedder_id!r} has no tag {tag!r}")
    tbl = open_lance_table(connect(ws.memory_uri), mt.name)  # own handle: checkout makes it read-only
    tbl.checkout(tag)
    rows = tbl.to_arrow()
    rows = rows.filter(pc.equal(rows.column("state"), pa.scalar(KEPT)))
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("id", "ascending")]))
    class_names = rows.column("class_name").to_pylist()
    xb = vectors_of(rows) if rows.num_rows else np.zeros((0, mt.dim), np.float32)
    return KeptMemory(ids=rows.column("id").to_pylist(), vectors=xb, class_names=class_names,
                      class_ids=np.asarray(rows.column("class_id").to_pylist(), np.int64),
                      batch_ids=rows.column("batch_id").to_pylist(), datasets=rows.column("dataset").to_pylist(),
                      lance_version=int(tags[tag]["version"]), lance_tag=tag, embedder_id=embedder_id,
                      table_name=mt.name, vocabulary=sorted(set(class_names)), provenance=mt.provenance(),
                      image_ids=rows.column("image_sha256").to_pylist())
