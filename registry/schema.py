"""A local SQLite MLflow store's schema, created once and atomically.

MLflow creates its tables on the first client call, in place, in several non-atomic
steps (the initial tables, then ~60 alembic migrations). A process killed in between
leaves a half-made `mlflow.db` that MLflow never repairs (`table secrets already exists`
on every later call), and two processes creating it at once race. Here the schema is
built in a private temporary file under a workspace lock and renamed into place, so the
store file is either absent or complete; a half-made file left by an older version (one
that holds no run and no model yet) is moved aside and rebuilt.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

from knnclip_core.errors import KnnclipError
from knnclip_core.locks import workspace_lock
from knnclip_core.workspace import Workspace

logger = logging.getLogger(__name__)

LOCK_NAME = "mlflow-schema.lock"
LOCK_TIMEOUT_S = 300.0
DATA_TABLES = ("runs", "registered_models", "model_versions")


def sqlite_path(uri: str) -> Optional[Path]:
    """The file of a `sqlite:///...` URI, None for any other store (a server, Postgres, ...)."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlparse(uri).path)
    return Path(path) if path and path != "/:memory:" else None


def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision

    return _get_latest_schema_revision()


def _state(db: Path, head: str) -> str:
    """'absent', 'complete', 'empty-partial' (half made, no data) or 'outdated' (has data)."""
    if not db.exists() or db.stat().st_size == 0:
        return "absent"
    con = sqlite3.connect(str(db), timeout=60)  # read-write: a hot journal of a killed writer rolls back
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            version = row[0] if row else None
        if version == head and "model_versions" in tables and "secrets" in tables:
            return "complete"
        has_data = any(t in tables and con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in DATA_TABLES)
    finally:
        con.close()
    return "outdated" if has_data else "empty-partial"


def _build(db: Path) -> None:
    """Create the full schema in a temporary file next to `db`, then rename it into place."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    tmp = db.with_name(f"{db.name}.init-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, db)
    dir_fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ensure_sqlite_schema(ws: Workspace, uri: str) -> str:
    """Make sure the SQLite MLflow store at `uri` has MLflow's complete schema.

    Returns what was found: 'complete', 'created', 'recovered' or 'not-sqlite' (left to
    MLflow). Raises KnnclipError for a store with data whose schema is older than this
    MLflow's, BusyError when another process keeps the schema lock for LOCK_TIMEOUT_S."""
    db = sqlite_path(uri)
    if db is None:
        return "not-sqlite"
    head = _head_revision()
    if _state(db, head) == "complete":  # fast path, no lock
        return "complete"
    db.parent.mkdir(parents=True, exist_ok=True)
    with workspace_lock(ws, LOCK_NAME, LOCK_TIMEOUT_S, what="MLflow schema creation",
                        guards="the MLflow store's schema"):
        for stale in db.parent.glob(f"{db.name}.init-*"):  # left by a killed creator (we hold the lock)
            stale.unlink(missing_ok=True)
        state = _state(db, head)
        if state == "complete":
            return "complete"
        if state == "outdated":
            raise KnnclipError(f"the MLflow store {db} holds releases but its schema is older than this MLflow's; "
                               f"back it up, then run `mlflow db upgrade {uri}`")
        if state == "empty-partial":
            aside = db.with_name(f"{db.name}.half-created-{int(time.time())}")
            os.replace(db, aside)
            for suffix in ("-journal", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            logger.warning("the MLflow store %s was left half-created by an interrupted run; moved to %s and "
                           "created again", db, aside.name)
        _build(db)
        return "recovered" if state == "empty-partial" else "created"
