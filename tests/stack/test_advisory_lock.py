"""workspace_lock on a real PostgreSQL: two processes with separate homes that share the catalog
(or a KNNCLIP_LOCK_URL) serialise; the second gets BusyError naming the holder, or waits; the
lock ends with its holder's connection."""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest

from knnclip_core.errors import BusyError, KnnclipError

from .shared_stores import fresh_database


def _workspace(home, catalog_url: str = "", lock_url: str = ""):
    from knnclip_core.config import load_settings
    from knnclip_core.workspace import Workspace

    return Workspace.from_settings(load_settings(home=str(home), catalog_url=catalog_url or None,
                                                 lock_url=lock_url or None))


def _hold(home, catalog_url, lock_url, name, held, release, die) -> None:
    from knnclip_core.locks import workspace_lock

    with workspace_lock(_workspace(home, catalog_url, lock_url), name, what="curation"):
        held.set()
        release.wait(60)
        if die:
            os._exit(3)  # killed while holding: no unlock, only the connection ends


def _start_holder(tmp_path, catalog_url, lock_url="", name="memory.lock", die=False):
    ctx = mp.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "holder"), catalog_url, lock_url, name, held, release, die))
    proc.start()
    assert held.wait(60), "the holder never took the lock"
    return proc, release


@pytest.fixture(scope="module")
def catalog_url(pg_server):
    return fresh_database(pg_server, "locks")


def test_second_machine_is_refused_then_waits(tmp_path, catalog_url):
    from knnclip_core.locks import workspace_lock

    other = _workspace(tmp_path / "other-home", catalog_url)
    assert other.shared_lock_url == catalog_url
    proc, release = _start_holder(tmp_path, catalog_url)
    try:
        with pytest.raises(BusyError, match=r"the memory is busy \(curation run by pid \d+ on .+\); try again"):
            with workspace_lock(other, "memory.lock", 0.3, guards="the memory"):
                pass
        with workspace_lock(other, "aliases-m.lock", 0):  # another name: not blocked
            pass
        t0 = time.monotonic()
        release_later = mp.get_context("spawn").Process(target=_set_after, args=(release, 1.0))
        release_later.start()
        with workspace_lock(other, "memory.lock", 30):  # waits for the holder to finish
            waited = time.monotonic() - t0
        release_later.join(10)
    finally:
        release.set()
        proc.join(30)
    assert 0.5 < waited < 20 and proc.exitcode == 0


def _set_after(event, seconds: float) -> None:
    time.sleep(seconds)
    event.set()


def test_a_killed_holder_frees_the_lock_and_lock_url_wins(tmp_path, catalog_url):
    from knnclip_core.locks import workspace_lock

    # KNNCLIP_LOCK_URL alone (SQLite catalogs in each home) is enough to share the locks
    proc, release = _start_holder(tmp_path, "", lock_url=catalog_url, die=True)
    other = _workspace(tmp_path / "other-home", "", lock_url=catalog_url)
    with pytest.raises(BusyError):
        with workspace_lock(other, "memory.lock", 0):
            pass
    release.set()
    proc.join(30)
    assert proc.exitcode == 3
    with workspace_lock(other, "memory.lock", 10):  # PostgreSQL ended the dead holder's session
        pass


def test_unreachable_lock_database_and_bad_lock_url_are_clear_errors(tmp_path, pg_server):
    from knnclip_core.locks import workspace_lock

    dead = pg_server.db_url("catalog").replace(f":{pg_server.port}/", ":1/")
    with pytest.raises(KnnclipError, match=r"cannot take lock memory.lock for a run: the lock database .*:1/catalog"):
        with workspace_lock(_workspace(tmp_path, lock_url=dead), "memory.lock"):
            pass
    with pytest.raises(ValueError, match="KNNCLIP_LOCK_URL must be a PostgreSQL URL"):
        _workspace(tmp_path, lock_url="sqlite:///x.db")
