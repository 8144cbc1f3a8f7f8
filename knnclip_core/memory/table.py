"""One LanceDB table per embedder: the memory's rows, their vectors and curation state.

The embedder id and its provenance record (full backbone spec and weights checksum, as
JSON; see embedders.provenance) are written into the table's schema metadata; vectors of
another embedder are refused (EmbedderMismatchError). Tables written before provenance was
recorded stay readable (`provenance()` is None for them).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import re
import time
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pyarrow as pa

from ..embedders.provenance import dumps, loads
from ..errors import EmbedderMismatchError, KnnclipError
from ..objstore import storage_options
from ..store_errors import StoreError, disk_full, is_commit_conflict, is_no_space, note_table, table_unreadable
from ..redact import redact_text

logger = logging.getLogger(__name__)

EMBEDDER_KEY = b"knnclip.embedder_id"
DIM_KEY = b"knnclip.dim"
PROVENANCE_KEY = b"knnclip.provenance"
UNCOMMITTED_GRACE_S = 10.0  # a table folder with no committed version this old was abandoned (not being created)

# Curation states of a row.
PENDING = "pending"        # embedded, not yet curated
KEPT = "kept"              # in the memory that will be published
DUPLICATE = "duplicate"    # near-duplicate of a kept row of the same class
CONFLICT = "conflict"      # near-duplicate of a row of another class (label conflict)
OVER_BUDGET = "over_budget"  # dropped by the budget strategy
FORGOTTEN = "forgotten"    # removed by a forget rule
STATES = (PENDING, KEPT, DUPLICATE, CONFLICT, OVER_BUDGET, FORGOTTEN)


# Lance's mark of an unenforced primary key, part of the schema the table is created with: set in a
# second commit instead (set_unenforced_primary_key), a writer that opens the table between the two
# merges without the key and two machines inserting the same new ids keep both copies.
PRIMARY_KEY_MARK = b"lance-schema:unenforced-primary-key:position"
PRIMARY_KEY = {PRIMARY_KEY_MARK: b"1"}


def memory_schema(embedder_id: str, dim: int, provenance: Optional[dict] = None) -> pa.Schema:
    """Arrow schema of a memory table for vectors of `dim` floats from `embedder_id`, with its
    provenance record (when given) in the metadata."""
    fields = [
        pa.field("id", pa.string(), nullable=False, metadata=PRIMARY_KEY),  # segment id (catalog)
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("class_id", pa.int64()),
        pa.field("class_name", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("batch_id", pa.string()),
        pa.field("image_sha256", pa.string()),
        pa.field("area", pa.int64()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        pa.field("embedder_id", pa.string()),
        pa.field("state", pa.string()),
        pa.field("state_reason", pa.string()),
    ]
    meta = {EMBEDDER_KEY: embedder_id.encode(), DIM_KEY: str(dim).encode()}
    if provenance is not None:
        if provenance.get("embedder_id") != embedder_id:
            raise EmbedderMismatchError(f"provenance of {provenance.get('embedder_id')!r} given for a memory "
                                        f"of {embedder_id!r}")
        meta[PROVENANCE_KEY] = dumps(provenance).encode()
    return pa.schema(fields, metadata=meta)


def table_name_for(embedder_id: str) -> str:
    """Stable table name: a readable prefix plus a hash of the full embedder id."""
    readable = re.sub(r"[^a-z0-9]+", "_", embedder_id.split("|")[0].lower()).strip("_")[:40]
    return f"memory_{readable}_{hashlib.sha1(embedder_id.encode()).hexdigest()[:10]}"


def connect(db_uri: str | Path):
    """LanceDB connection to the memory at `db_uri` (a folder or s3://bucket/prefix; the
    object store's options come from the environment, see objstore)."""
    import lancedb

    try:
        return lancedb.connect(str(db_uri), storage_options=storage_options(str(db_uri)))
    except (OSError, ValueError, RuntimeError) as exc:
        if "://" not in str(db_uri):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise KnnclipError(redact_text(f"the memory store {db_uri} cannot be reached ({first[:300]}); check "
                                       "KNNCLIP_MEMORY_URI, the S3 endpoint and its credentials")) from None


class MemoryTable:
    """A memory table bound to one embedder id."""

    def __init__(self, db, name: str, embedder_id: str, dim: int):
        self.db, self.name, self.embedder_id, self.dim = db, name, embedder_id, dim
        self.path = table_path(db, name)
        self.table = open_lance_table(db, name)

    @classmethod
    def open(cls, db_dir: str | Path, embedder_id: str, dim: int | None = None, create: bool = True,
             provenance: Optional[dict] = None) -> "MemoryTable":
        """Open (or create, when `dim` is given) the table of `embedder_id`; a created table
        records `provenance` (the embedder's record, see embedders.provenance).

        Raises EmbedderMismatchError when the table holds another embedder's vectors
        or another dimension, FileNotFoundError when absent and not created.
        """
        db = connect(db_dir)
        name = table_name_for(embedder_id)
        if name not in list_table_names(db):
            if not create or dim is None:
                raise FileNotFoundError(f"no memory table for embedder {embedder_id!r} in {db_dir}; run `knnclip embed` first")
            _create(db, name, memory_schema(embedder_id, dim, provenance))
        mt = cls(db, name, embedder_id, dim or 0)
        stored = mt.stored_embedder_id()
        if stored != embedder_id:
            raise EmbedderMismatchError(f"table {name} holds vectors of {stored!r}, not {embedder_id!r}")
        stored_dim = mt.table.schema.field("vector").type.list_size
        if dim is not None and stored_dim != dim:
            raise EmbedderMismatchError(f"table {name} holds {stored_dim}-d vectors, not {dim}-d")
        mt.dim = stored_dim
        return mt

    def stored_embedder_id(self) -> str:
        meta = self.table.schema.metadata or {}
        return meta.get(EMBEDDER_KEY, b"").decode()

    def provenance(self) -> Optional[dict]:
        """The provenance record stored with the table; None for tables written before it was
        recorded. Raises ProvenanceError when it is stored but unreadable."""
        return stored_provenance(self.table.schema.metadata, f"memory table {self.name}")

    def insert_missing(self, rows: pa.Table) -> None:
        """Insert the rows whose segment id is not in the table yet, in one commit; rows
        already there are left as they are (a segment's vector under one embedder never
        changes, and its curation state belongs to curate: re-running embed, or two embeds
        racing a curation, cannot reset a kept row). Refuses rows of another embedder."""
        if rows.num_rows == 0:
            return
        ids = set(rows.column("embedder_id").unique().to_pylist())
        if ids != {self.embedder_id}:
            other = sorted(i for i in ids if i != self.embedder_id)
            raise EmbedderMismatchError(f"refusing to write vectors of {other} into the memory of {self.embedder_id!r}")
        rows = rows.select(self.table.schema.names).cast(self.table.schema)
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                self.table.merge_insert("id").when_not_matched_insert_all().execute(rows)
                return
            except Exception as exc:  # noqa: BLE001 - only a lost commit race is retried
                if not is_commit_conflict(exc) or attempt == COMMIT_ATTEMPTS - 1:
                    raise
                logger.info("memory table %s: a concurrent writer committed first (%s); retrying",
                            self.name, str(exc).splitlines()[0][:160])
                time.sleep(0.2 * 2 ** attempt * (1 + random.random()))
                self.table = open_lance_table(self.db, self.name)  # the newest version

    def ids(self) -> set[str]:
        """All segment ids present in the table."""
        return set(self.column("id"))

    def column(self, name: str) -> list:
        """One column of every row, without reading the vectors."""
        return self.table.search().select([name]).limit(None).to_arrow().column(name).to_pylist()

    def count(self) -> int:
        return self.table.count_rows()


COMMIT_ATTEMPTS = 6  # a merge that lost the race to another writer's commit, redone on the newest version


def table_path(db, name: str) -> str:
    """Where table `name` of the connection `db` lives (its folder or object-store prefix)."""
    return f"{str(db.uri).rstrip('/')}/{name}.lance"


def open_lance_table(db, name: str):
    """`db.open_table(name)`, remembered for error messages; a table LanceDB cannot open, or a
    full disk, is a StoreError naming the table."""
    path = table_path(db, name)
    note_table(path)
    try:
        return db.open_table(name)
    except Exception as exc:  # noqa: BLE001 - a damaged table or a full disk: one sentence
        if is_no_space(exc):
            raise disk_full(path) from exc
        raise table_unreadable(path, str(exc).splitlines()[0][:200]) from exc


def _create(db, name: str, schema: pa.Schema) -> None:
    """Create table `name`; when another writer (another machine) creates it at the same
    moment, theirs is kept (MemoryTable.open then checks its embedder and dimension)."""
    try:
        tbl = db.create_table(name, schema=schema, exist_ok=True)
    except Exception as exc:  # noqa: BLE001 - a lost creation race; anything else is raised below
        if is_no_space(exc):  # our own half-created folder: out of the way, so a rerun creates it afresh
            folder = _local_folder(db, name)
            if folder is not None and not _committed(folder):
                _set_aside(folder, "its creation ran out of disk space")
            raise disk_full(folder or f"{db.uri}/{name}.lance") from exc
        if name not in list_table_names(db):
            raise
        logger.info("memory table %s was created meanwhile by another writer", name)
        return
    if PRIMARY_KEY_MARK not in (tbl.schema.field("id").metadata or {}):  # a LanceDB that drops field metadata
        try:
            tbl.set_unenforced_primary_key("id")
        except Exception as exc:  # concurrent creation
            logger.debug("primary key not set on %s: %s", name, exc)


def stored_provenance(metadata: Optional[dict], where: str) -> Optional[dict]:
    """The provenance record in a table's schema metadata (None when absent)."""
    raw = (metadata or {}).get(PROVENANCE_KEY)
    return None if raw is None else loads(raw, where)


def list_table_names(db) -> list[str]:
    """Table names of a LanceDB connection (API differs across versions). A local table
    folder with no committed version (its first write was interrupted, or `_versions/` was
    removed) is absent: left alone while it may still be being created, set aside (renamed,
    with a warning) once UNCOMMITTED_GRACE_S old; `create` then makes the table afresh."""
    res = db.list_tables() if hasattr(db, "list_tables") else db.table_names()
    names = list(getattr(res, "tables", res))
    out = []
    for name in names:
        folder = _local_folder(db, name)
        if folder is None or _committed(folder):
            out.append(name)
        elif time.time() - _newest_mtime(folder) > UNCOMMITTED_GRACE_S:
            _set_aside(folder, "it has no committed version (an interrupted first write, or its _versions/ "
                               "folder was removed)")
        else:
            logger.warning("memory table %s has no committed version (being created, or its first write was "
                           "interrupted): treated as absent", folder)
    return out


def _local_folder(db, name: str) -> Optional[Path]:
    """The folder of table `name` when the database is local, else None."""
    uri = str(db.uri)
    if "://" in uri and not uri.startswith("file://"):
        return None
    return Path(uri.removeprefix("file://")) / f"{name}.lance"


def _committed(folder: Path) -> bool:
    """True when a table folder holds a committed version (a manifest), or is not there."""
    versions = folder / "_versions"
    if not folder.exists():
        return True
    try:
        return any(p.suffix == ".manifest" for p in versions.iterdir())
    except FileNotFoundError:
        return False


def _newest_mtime(folder: Path) -> float:
    times = [folder.stat().st_mtime]
    for p in folder.iterdir():
        try:
            times.append(p.stat().st_mtime)
        except FileNotFoundError:
            pass
    return max(times)


def _set_aside(folder: Path, why: str) -> None:
    """Rename a table folder that holds no committed version out of the database's sight."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    aside = folder.with_name(f"{folder.name}.no-version-{stamp}")
    try:
        folder.rename(aside)
    except OSError as exc:
        raise StoreError(f"the memory table {folder} has no committed version and cannot be moved aside ({exc}); "
                         f"move or delete it, then run the command again") from exc
    logger.warning("memory table %s was set aside as %s: %s; `knnclip embed` creates it again from the catalog",
                   folder, aside, why)


def make_rows(embedder_id: str, vectors: np.ndarray, meta: Iterable[dict], state: str = PENDING) -> pa.Table:
    """Rows for `insert_missing`: `meta` gives id, class_id, class_name, dataset, batch_id,
    image_sha256, area, ingested_at for each vector."""
    meta = list(meta)
    assert vectors.ndim == 2 and len(meta) == vectors.shape[0], (vectors.shape, len(meta))
    dim = vectors.shape[1]
    cols = {key: [m[key] for m in meta] for key in
            ("id", "class_id", "class_name", "dataset", "batch_id", "image_sha256", "area", "ingested_at")}
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    schema = memory_schema(embedder_id, dim)
    return pa.table({
        **{k: cols[k] for k in ("id",)},
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        **{k: cols[k] for k in ("class_id", "class_name", "dataset", "batch_id", "image_sha256", "area", "ingested_at")},
        "embedder_id": [embedder_id] * len(meta),
        "state": [state] * len(meta),
        "state_reason": [""] * len(meta),
    }).cast(schema)
