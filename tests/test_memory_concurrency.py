"""Two curation runs at once on one workspace (two real processes) leave a consistent table."""
from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from knnclip_core.errors import BusyError
from knnclip_core.memory.lock import memory_lock
from knnclip_core.memory.synthetic import clustered_vectors, write_memory
from knnclip_core.memory.table import MemoryTable

EID = "test|tiny|random-init|mean|l2|dim=16"


def _run(home: str, budget: int, timeout: float, barrier, out) -> None:
    os.environ["KNNCLIP_HOME"] = home
    from knnclip_core.config import load_settings
    from knnclip_core.memory.curate import curate
    from knnclip_core.workspace import Workspace

    settings = load_settings()
    ws = Workspace.from_settings(settings)
    barrier.wait()
    try:
        rep = curate(settings, ws, EID, budget_vectors=budget, lock_timeout_s=timeout)
        out.put(("done", budget, rep["counts"]["kept"], rep["lance_tag"]))
    except BusyError as exc:
        out.put(("busy", budget, str(exc), None))


def _race(workspace, timeout):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_run, args=(str(workspace.home), b, timeout, barrier, out)) for b in (40, 90)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    return [out.get(timeout=5) for _ in procs]


def check_consistent(workspace, results):
    mt = MemoryTable.open(workspace.memory_dir, EID)
    t = mt.table.to_arrow()
    assert t.num_rows == 300 and len(set(t.column("id").to_pylist())) == 300
    kept = t.column("state").to_pylist().count("kept")
    last_done = [r for r in results if r[0] == "done"]
    assert kept in {r[1] for r in last_done} and "pending" not in t.column("state").to_pylist()


@pytest.mark.parametrize("timeout", [pytest.param(60.0, marks=pytest.mark.slow), 0.0])
def test_two_concurrent_curations(workspace, timeout):
    xb, labels = clustered_vectors(300, 16, 4, seed=9)
    write_memory(workspace.memory_dir, EID, xb, labels)
    results = _race(workspace, timeout)
    done = [r for r in results if r[0] == "done"]
    if timeout > 0:  # serialised: both finish
        assert len(done) == 2 and {r[2] for r in done} == {40, 90}
    else:  # one may fail cleanly
        assert len(done) >= 1
        assert all("busy" in r[2] for r in results if r[0] == "busy")
    check_consistent(workspace, results)


def test_lock_refuses_second_holder(workspace):
    with memory_lock(workspace, 0):
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_try_lock, args=(str(workspace.home), q))
        p.start()
        p.join(60)
        assert q.get(timeout=5).startswith("busy")
    with memory_lock(workspace, 0):  # released
        pass


def _try_lock(home, q):
    from knnclip_core.config import load_settings
    from knnclip_core.workspace import Workspace

    ws = Workspace.from_settings(load_settings(home=home))
    try:
        with memory_lock(ws, 0.2):
            q.put("got it")
    except BusyError as exc:
        q.put(f"busy: {exc}")


def test_table_created_meanwhile_by_another_writer_is_opened(workspace):
    """Two machines embedding at once both see no table and both create it: the second
    creation finds the first one's table (primary key set) and keeps it, instead of failing."""
    from knnclip_core.memory.table import _create, connect, memory_schema, table_name_for

    first = MemoryTable.open(workspace.memory_uri, EID, 16)
    _create(connect(workspace.memory_uri), table_name_for(EID), memory_schema(EID, 16))  # the loser of the race
    assert MemoryTable.open(workspace.memory_uri, EID, 16).name == first.name
