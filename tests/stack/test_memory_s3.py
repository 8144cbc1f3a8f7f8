"""The LanceDB memory on the S3 server, written by several processes at once: two embedders
inserting the same segments (and their own) through insert_missing, and a curation writing
states, all at the same time. LanceDB's commit conflict detection must leave every row once
and every state written."""
from __future__ import annotations

import multiprocessing as mp
import os
import uuid

import numpy as np

from knnclip_core.memory.synthetic import EPOCH, clustered_vectors, write_memory

EID = "test|tiny|random-init|mean|l2|dim=16"
BASE, SHARED, OWN, CHUNK = 60, 120, 40, 30


def _rows(xb, labels, prefix: str, start: int, stop: int):
    from datetime import timedelta

    from knnclip_core.memory.table import make_rows

    meta = [{"id": f"{prefix}{i:05d}", "class_id": int(labels[i]), "class_name": f"class{int(labels[i])}",
             "dataset": "d", "batch_id": "b", "image_sha256": f"img{i}", "area": 10,
             "ingested_at": EPOCH + timedelta(seconds=i)} for i in range(start, stop)]
    return make_rows(EID, xb[start:stop], meta)


def _embedder(uri: str, which: int, barrier, out) -> None:
    from knnclip_core.memory.table import MemoryTable

    xb, labels = clustered_vectors(SHARED + OWN, 16, 4, seed=5)
    mt = MemoryTable.open(uri, EID, create=False)
    barrier.wait(60)
    order = range(0, SHARED, CHUNK) if which == 0 else reversed(range(0, SHARED, CHUNK))
    for start in order:  # the same segments, in opposite orders, several commits each
        mt.insert_missing(_rows(xb, labels, "shared", start, start + CHUNK))
    mt.insert_missing(_rows(xb, labels, f"own{which}-", SHARED, SHARED + OWN))
    out.put(("embedder", which))


def _curator(uri: str, barrier, out) -> None:
    from knnclip_core.memory.curate import write_states
    from knnclip_core.memory.table import MemoryTable

    mt = MemoryTable.open(uri, EID, create=False)
    ids = [f"base{i:06d}" for i in range(BASE)]
    barrier.wait(60)
    for state in ("duplicate", "kept"):
        write_states(mt, ids, [state] * BASE, [f"round {state}"] * BASE)
    out.put(("curator", 0))


def test_concurrent_writers_on_s3_lose_nothing(s3_server, monkeypatch):
    from knnclip_core.memory.table import MemoryTable

    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    uri = s3_server.uri(f"memory-race-{uuid.uuid4().hex[:6]}")
    xb, labels = clustered_vectors(BASE, 16, 4, seed=1)
    write_memory(uri, EID, xb, labels, id_prefix="base")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_embedder, args=(uri, i, barrier, out)) for i in range(2)]
    procs.append(ctx.Process(target=_curator, args=(uri, barrier, out)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    t = MemoryTable.open(uri, EID, create=False).table.to_arrow()
    ids = t.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == BASE + SHARED + 2 * OWN
    states = dict(zip(ids, t.column("state").to_pylist()))
    assert {states[f"base{i:06d}"] for i in range(BASE)} == {"kept"}  # the curation's last write won
    assert {s for i, s in states.items() if not i.startswith("base")} == {"pending"}
    vec = np.asarray(t.column("vector").to_pylist(), np.float32)
    assert np.isfinite(vec).all() and vec.shape == (len(ids), 16)



def _two_at_once(target, args_of) -> list:
    """Run target(*args_of(i), barrier, queue) in two spawned processes; their exit codes."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(i), barrier, out)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    return [p.exitcode for p in procs]


def _creator(uris: list[str], barrier, out) -> None:
    from knnclip_core.memory.table import MemoryTable

    for uri in uris:
        barrier.wait(60)
        out.put(MemoryTable.open(uri, EID, 16).name)


def test_two_writers_create_the_table_at_once(s3_server, monkeypatch):
    """Both machines find no table and create it at the same moment: both go on with one table."""
    from knnclip_core.memory.table import MemoryTable, connect, list_table_names

    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    uris = [s3_server.uri(f"memory-create-{uuid.uuid4().hex[:6]}") for _ in range(3)]
    assert _two_at_once(_creator, lambda i: (uris,)) == [0, 0]
    for uri in uris:
        assert len(list_table_names(connect(uri))) == 1 and MemoryTable.open(uri, EID, create=False).count() == 0


def _create_and_fill(uris: list[str], which: int, barrier, out) -> None:
    from knnclip_core.config import load_settings
    from knnclip_core.memory.lock import creation_lock
    from knnclip_core.memory.table import MemoryTable
    from knnclip_core.workspace import Workspace

    xb, labels = clustered_vectors(SHARED + OWN, 16, 4, seed=5)
    for uri in uris:
        os.environ["KNNCLIP_MEMORY_URI"] = uri
        ws = Workspace.from_settings(load_settings()).ensure()
        barrier.wait(60)
        for start in range(0, SHARED, CHUNK // 3):  # each chunk as a new embed run would: open, then merge
            with creation_lock(ws):  # as the embed stage opens its table
                mt = MemoryTable.open(uri, EID, 16)
            mt.insert_missing(_rows(xb, labels, "shared", start, start + CHUNK // 3))
        mt.insert_missing(_rows(xb, labels, f"own{which}-", SHARED, SHARED + OWN))
    out.put(which)


def test_two_embeds_create_and_fill_the_table_at_once(s3_server, monkeypatch, tmp_path):
    """Both machines find no table, create it and merge the same segments at once: every row
    once, none lost to the later creation (an overwrite) or to a stale merge."""
    from knnclip_core.memory.table import MemoryTable

    for k, v in {**s3_server.env, "KNNCLIP_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    uris = [s3_server.uri(f"memory-fill-{uuid.uuid4().hex[:6]}") for _ in range(4)]
    assert _two_at_once(_create_and_fill, lambda i: (uris, i)) == [0, 0]
    for uri in uris:
        ids = MemoryTable.open(uri, EID, create=False).column("id")
        assert len(ids) == len(set(ids)) == SHARED + 2 * OWN, uri
