"""Catalog engine and sessions. SQLite in the workspace by default, any SQLAlchemy URL."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from sqlalchemy import event
from sqlmodel import Session, SQLModel, create_engine

from . import models  # noqa: F401  (registers the tables)
from .liveness import mark_stale_runs

logger = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def get_engine(url: str):
    """Engine for `url`, tables created on first use, interrupted runs marked failed (see
    liveness.py). SQLite gets WAL and a busy timeout."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False} if is_sqlite else {})
    if is_sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    SQLModel.metadata.create_all(engine)
    try:  # the first open in a process finds runs a killed process left `running`
        mark_stale_runs(engine)
    except Exception as exc:  # noqa: BLE001 - never keep the catalog from opening
        logger.warning("could not check for interrupted runs: %s", exc)
    return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
