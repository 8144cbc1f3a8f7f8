"""Named locks shared by every machine that reaches one PostgreSQL database: a session-level
`pg_advisory_lock` held on a dedicated connection for the `with` body. PostgreSQL drops it
when that connection ends, so a killed holder (or a lost machine) never leaves one stuck."""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from .errors import BusyError, KnnclipError
from .redact import redact_url

logger = logging.getLogger(__name__)

POLL_S = 0.1
KEEPALIVE = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
_HOLDER_SQL = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = :hi AND l.objid::bigint = :lo
"""


def is_postgres_url(url: str | None) -> bool:
    """True for a PostgreSQL SQLAlchemy URL (postgresql://, postgresql+driver://, postgres://)."""
    return bool(url) and url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def sqlalchemy_url(url: str) -> str:
    """`url` with a driver SQLAlchemy can load: a bare postgresql:// or postgres:// URL gets
    psycopg (version 3) when psycopg2 is not installed; any other URL is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres"):
        return url
    try:
        import psycopg2  # noqa: F401
        return f"postgresql://{rest}"
    except ImportError:
        return f"postgresql+psycopg://{rest}"


def lock_key(name: str) -> int:
    """Stable signed 64-bit advisory-lock key of lock `name` (the same on every machine)."""
    return int.from_bytes(hashlib.sha256(f"knnclip.lock:{name}".encode()).digest()[:8], "big", signed=True)


@lru_cache(maxsize=4)
def _engine(url: str):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # one real connection per lock; the server probes it, so a vanished machine's lock ends within ~a minute
    return create_engine(sqlalchemy_url(url), poolclass=NullPool, connect_args={"options": KEEPALIVE})


def safe_url(url: str) -> str:
    """`url` with its password hidden, for messages (knnclip_core.redact)."""
    return redact_url(url)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _holder(conn, key: int) -> str:
    from sqlalchemy import text

    u = key & 0xFFFFFFFFFFFFFFFF
    try:
        names = conn.execute(text(_HOLDER_SQL), {"hi": u >> 32, "lo": u & 0xFFFFFFFF}).scalars().all()
    except Exception:  # noqa: BLE001 - only for the message
        names = []
    return next((n for n in names if n), "another process")


@contextmanager
def advisory_lock(url: str, name: str, timeout_s: float = 0.0, what: str = "a run",
                  guards: str = "the workspace") -> Iterator[None]:
    """Hold the advisory lock of `name` in the PostgreSQL database at `url` for the `with` body.

    Waits up to `timeout_s` seconds (0: do not wait). Raises BusyError naming `guards` and
    the holder when another session keeps holding it, KnnclipError when the database
    cannot be reached."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    key = lock_key(name)
    me = f"{what} run by pid {os.getpid()} on {socket.gethostname()}"[:63]
    try:
        conn = _engine(url).connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as exc:
        raise KnnclipError(f"cannot take lock {name} for {what}: the lock database {safe_url(url)} "
                           f"cannot be reached: {_first_line(getattr(exc, 'orig', None) or exc)}") from None
    try:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            if time.monotonic() >= deadline:
                raise BusyError(f"{guards} is busy ({_holder(conn, key)}); try again when that run finishes")
            time.sleep(POLL_S)
        conn.execute(text("SELECT set_config('application_name', :n, false)"), {"n": me})
        logger.debug("advisory lock taken: %s (key %d)", name, key)
        try:
            yield
        finally:
            try:
                if not conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar():
                    logger.warning("lock %s was no longer held at the end of %s (its connection was lost)", name, what)
            except SQLAlchemyError as exc:  # the session is gone: so is its lock
                logger.warning("lock %s was lost during %s (%s); its connection ended", name, what, exc)
    finally:
        conn.close()
