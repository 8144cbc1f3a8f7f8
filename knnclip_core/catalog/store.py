"""Catalog engine and sessions. SQLite in the workspace by default, any SQLAlchemy URL
(PostgreSQL for a catalog several machines share)."""
from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Iterator, Optional, Sequence

from sqlalchemy import event
from sqlmodel import Session, SQLModel, create_engine

from ..pg_lock import advisory_lock, is_postgres_url, sqlalchemy_url
from ..store_errors import StoreError, check_sqlite, sqlite_error
from . import models  # noqa: F401  (registers the tables)
from .liveness import mark_stale_runs

logger = logging.getLogger(__name__)

SCHEMA_LOCK = "catalog-schema"
INSERT_ROWS = 500  # rows per INSERT statement


@lru_cache(maxsize=8)
def get_engine(url: str):
    """Engine for `url`, tables created on first use, interrupted runs marked failed (see
    liveness.py). SQLite gets WAL and a busy timeout; PostgreSQL sessions run in UTC and
    create the tables under an advisory lock (machines opening it at once do not race)."""
    is_sqlite, is_pg = url.startswith("sqlite"), is_postgres_url(url)
    args = {"timeout": 60, "check_same_thread": False} if is_sqlite else {"options": "-c timezone=utc"} if is_pg else {}
    engine = create_engine(sqlalchemy_url(url), connect_args=args, pool_pre_ping=is_pg)
    if is_sqlite:
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "handle_error")
        def _one_sentence(context):  # a damaged file or a full disk: StoreError naming the file
            err = sqlite_error(sqlite_path(url), context.original_exception)
            if err is not None:
                raise err from context.original_exception
    with advisory_lock(url, SCHEMA_LOCK, 120, what="catalog schema creation",
                       guards="the catalog schema") if is_pg else nullcontext():
        SQLModel.metadata.create_all(engine)
    try:  # the first open in a process finds runs a killed process left `running`
        mark_stale_runs(engine)
    except StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - never keep the catalog from opening
        logger.warning("could not check for interrupted runs: %s", exc)
    return engine


def sqlite_path(url: str) -> str:
    """The file of an SQLite URL (`sqlite:///path`), else the URL itself."""
    return url.split(":///", 1)[1].split("?", 1)[0] if url.startswith("sqlite") and ":///" in url else url


def check_catalog(url: str) -> None:
    """Before writing into the catalog: an SQLite file must pass its header check and
    `PRAGMA quick_check` (StoreError naming the file otherwise); PostgreSQL checks itself."""
    if url.startswith("sqlite") and ":///" in url:
        check_sqlite(sqlite_path(url))


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


def insert_missing(session: Session, model, rows: Sequence[dict], returning=None,
                   order: Sequence[str] = ()) -> Optional[list]:
    """Insert `rows` (dicts of `model`'s columns) that clash with no row of the table (its
    primary key and unique columns), sorted by `order` (default: the primary key) so that
    every writer takes row locks in one order; a row another writer (another machine) has
    just added is skipped, not an error. Returns the `returning` column of the rows
    inserted when asked, else None."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"the catalog supports SQLite and PostgreSQL, not {dialect}")
    keys = list(order) or [c.name for c in model.__table__.primary_key.columns]
    rows = sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in keys))
    out: list = []
    for start in range(0, len(rows), INSERT_ROWS):  # under both databases' bound-parameter limits
        stmt = insert(model).values(rows[start:start + INSERT_ROWS]).on_conflict_do_nothing()
        if returning is None:
            session.execute(stmt)
        else:
            out.extend(session.execute(stmt.returning(returning)).scalars())
    return out if returning is not None else None
