"""Damaged stores and full disks, told in one sentence.

A damaged catalog (SQLite), a memory table that cannot be read (LanceDB) and a disk that
is full end a command with a StoreError naming the file and what to do, never a traceback.
`explain(exc)` finds such a cause anywhere in an exception's chain (the CLI's last resort);
the catalog engine and the memory tables raise StoreError themselves where they know the
path. `check_sqlite(path)` is the cheap check ingest runs before it writes.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Iterator, Optional

from .errors import KnnclipError

logger = logging.getLogger(__name__)

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_TEXT = ("no space left on device", "os error 28", "database or disk is full", "disk quota exceeded",
                 "errno 28", "enospc", "os error 122")
SQLITE_DAMAGE_TEXT = ("database disk image is malformed", "file is not a database", "malformed database schema")
LANCE_TEXT = ("lance error", "lanceerror")
LANCE_CONFLICT_TEXT = ("incompatible transaction", "commit conflict", "concurrent transaction")
LOW_SPACE_BYTES = 1 << 20  # an I/O error with less than this free is a full disk
SQLITE_HEADER = b"SQLite format 3\x00"
_opened_tables: list[str] = []  # memory tables this process opened (named when LanceDB's error does not)


class StoreError(KnnclipError):
    """A store on disk is damaged or its disk is full; the message says which file and what to do."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its causes and contexts, and SQLAlchemy's wrapped DB-API errors (`.orig`)."""
    seen, todo = set(), [exc]
    while todo and len(seen) < 32:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def is_no_space(exc: BaseException) -> bool:
    """True when a full disk (or quota) is anywhere in `exc`'s chain."""
    for e in chain(exc):
        if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
            return True
        if any(t in str(e).lower() for t in NO_SPACE_TEXT):
            return True
    return False


def is_commit_conflict(exc: BaseException) -> bool:
    """True when Lance refused a commit, anywhere in `exc`'s chain, because a concurrent
    writer's commit made it stale (an idempotent write may then be redone)."""
    return any(t in str(e).lower() for e in chain(exc) for t in LANCE_CONFLICT_TEXT)


def free_bytes(path: str | Path) -> Optional[int]:
    """Free bytes on the filesystem holding `path` (its nearest existing parent), or None."""
    p = Path(path)
    for candidate in (p, *p.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def _size(n: Optional[int]) -> str:
    if n is None:
        return "unknown space"
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= k:
            return f"{n / k:.1f} {unit}"
    return f"{n} bytes"


def disk_full(path: str | Path) -> StoreError:
    """The one sentence for a full disk while writing `path`."""
    return StoreError(f"the disk holding {path} is full ({_size(free_bytes(path))} free): free some space there "
                      f"(or move the workspace to a larger disk) and run the command again")


def _no_space_path(exc: BaseException, home: Optional[str] = None) -> Optional[str]:
    """The file a no-space error names (OSError.filename, else a path in the error's text
    whose folder exists, one under `home` first); None when it names none."""
    found = []
    for e in chain(exc):
        if isinstance(e, OSError) and e.filename:
            return str(e.filename)
        for m in re.finditer(r"(?<![\w/:.])(/[^\s:'\",()]+)", str(e)):
            p = m.group(1).rstrip(".")
            if not p.startswith(("/rustc/", "/root/.cargo/")) and Path(p).parent.is_dir():
                found.append(p)
    if home:
        found.sort(key=lambda p: not p.startswith(str(home)))
    return found[0] if found else None


def catalog_damaged(path: str | Path, reason: str) -> StoreError:
    """The one sentence for a catalog file SQLite cannot read (the MLflow store: its own)."""
    if Path(path).name == "mlflow.db":
        return StoreError(f"the release registry {path} is damaged ({reason}): restore it from a backup; "
                          f"knnclip writes nothing into it meanwhile")
    return StoreError(f"the catalog {path} is damaged ({reason}): restore it from a backup, or move it aside and "
                      f"ingest the data again (segment ids are stable, so the memory and releases still match); "
                      f"knnclip writes nothing into it meanwhile")


def table_unreadable(path: str, reason: str) -> StoreError:
    """The one sentence for a memory table LanceDB cannot read."""
    return StoreError(f"the memory table {path} cannot be read ({reason}): if it is damaged, restore it from a "
                      f"backup, or move it aside and run `knnclip embed` then `knnclip curate` to rebuild it "
                      f"from the catalog")


def sqlite_error(path: str | Path, exc: BaseException) -> Optional[StoreError]:
    """A StoreError for an SQLite error on the file `path` that is a damaged file or a full
    disk; None for any other error."""
    for e in chain(exc):
        if not isinstance(e, sqlite3.Error):
            continue
        text, code = str(e).lower(), getattr(e, "sqlite_errorcode", None)
        if code in (11, 26) or any(t in text for t in SQLITE_DAMAGE_TEXT):  # SQLITE_CORRUPT, SQLITE_NOTADB
            return catalog_damaged(path, str(e).splitlines()[0])
        if code == 13 or "database or disk is full" in text:
            return disk_full(path)
        if "disk i/o error" in text:
            free = free_bytes(path)
            if free is not None and free < LOW_SPACE_BYTES:
                return disk_full(path)
            return StoreError(f"the catalog {path} could not be written (disk I/O error): check the disk, then "
                              f"run the command again")
    return None


def check_sqlite(path: str | Path) -> None:
    """Cheap integrity check of an SQLite file before writing into it: its header, then
    `PRAGMA quick_check`. Raises StoreError naming the file when it is damaged; a missing
    or empty file passes (it is created)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    if not head:
        return
    if head != SQLITE_HEADER:
        raise catalog_damaged(path, "not an SQLite database")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise (sqlite_error(path, exc) or catalog_damaged(path, str(exc))) from exc
    problems = [r[0] for r in rows if r and r[0] != "ok"]
    if problems:
        raise catalog_damaged(path, f"quick_check: {problems[0][:200]}")


def note_table(path: str) -> None:
    """Remember a memory table this process opened (for errors that do not name one)."""
    if path in _opened_tables:
        _opened_tables.remove(path)
    _opened_tables.append(path)
    del _opened_tables[:-16]


def _is_lance(e: BaseException) -> bool:
    """True for an error LanceDB raised (by its text, or raised from inside its code)."""
    text = str(e).lower()
    if any(t in text for t in LANCE_TEXT) or type(e).__module__.startswith(("lance", "lancedb")):
        return True
    tb, last = e.__traceback__, None
    while tb is not None:
        tb, last = tb.tb_next, tb.tb_frame.f_code.co_filename
    return last is not None and f"{os.sep}lancedb{os.sep}" in last


def explain(exc: BaseException, home: Optional[str] = None) -> Optional[StoreError]:
    """A StoreError for `exc` when a damaged store or a full disk is behind it (a StoreError
    itself is returned as is), else None. `home`: the workspace, named for a full disk when
    the error names no file."""
    if isinstance(exc, StoreError):
        return exc
    if is_no_space(exc):
        path = _no_space_path(exc, home) or home or os.getcwd()
        return disk_full(path)
    if isinstance(exc, KnnclipError):
        return None  # already one sentence
    for e in chain(exc):
        if isinstance(e, sqlite3.Error) and any(t in str(e).lower() for t in SQLITE_DAMAGE_TEXT):
            return _damaged_sqlite(home) or StoreError(f"an SQLite store of the workspace could not be read "
                                                       f"({str(e).splitlines()[0]}): restore it from a backup")
        if _is_lance(e):
            reason = re.split(r", /(?:rustc|root)/", re.sub(r"\s+", " ", str(e)))[0][:200]
            where = _opened_tables[-1] if _opened_tables else (f"under {home}" if home else "of the workspace")
            return table_unreadable(where, reason)
    return None


def _damaged_sqlite(home: Optional[str]) -> Optional[StoreError]:
    """The StoreError of the first damaged SQLite file of the workspace `home`, or None."""
    for name in ("catalog.db", "mlflow/mlflow.db"):
        try:
            check_sqlite(Path(home or ".") / name)
        except StoreError as err:
            return err
    return None
