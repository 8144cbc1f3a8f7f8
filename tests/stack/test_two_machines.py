"""Two "machines" (separate processes, separate KNNCLIP_HOME folders) sharing only PostgreSQL
(catalog and locks), the S3 server (the memory) and the MLflow server ingest, embed, curate,
publish and move an alias at the same time: no row, model version or alias history entry is
lost. Without the shared lock (file locks in each home) the alias history loses entries."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .shared_stores import fresh_database, machine_env

pytestmark = pytest.mark.slow

MOVES = 12  # per machine; 2 x MOVES stays under the history's log cap (registry.aliases.MAX_LOG)
MACHINES = ("machine0", "machine1")


def _run_machines(tmp_path: Path, shared: dict) -> list[dict]:
    from knnclip_core.sample_data import write_sample_dataset

    sync = tmp_path / "sync"
    sync.mkdir()
    procs = []
    for i, name in enumerate(MACHINES):
        data = write_sample_dataset(tmp_path / "data" / name, images=10, classes=4, seed=100 + i)
        out = tmp_path / f"{name}.json"
        log = open(tmp_path / f"{name}.log", "w")
        cmd = [sys.executable, str(Path(__file__).with_name("machine.py")), name, str(data), str(sync), str(out),
               str(MOVES)]
        procs.append((name, out, log, subprocess.Popen(cmd, env=machine_env(tmp_path / name / "home", shared),
                                                        stdout=log, stderr=subprocess.STDOUT)))
    codes = {}
    for name, out, log, proc in procs:
        codes[name] = proc.wait(timeout=480)
        log.close()
    failed = [n for n in MACHINES if codes[n] != 0]
    # the machine that failed on its own comes first: the other only stopped waiting for it
    failed.sort(key=lambda n: "the other machine failed" in (tmp_path / f"{n}.log").read_text())
    assert not failed, "\n".join(f"{n} failed (exit {codes[n]}):\n" + (tmp_path / f"{n}.log").read_text()[-4000:]
                                  for n in failed)
    return [json.loads(out.read_text()) for _, out, _, _ in procs]


def test_two_machines_lose_no_rows_versions_or_history(tmp_path, monkeypatch, pg_server, s3_server, mlflow_server):
    from sqlmodel import select

    from knnclip_core.catalog import Segment, session_scope
    from knnclip_core.config import load_settings
    from knnclip_core.memory.table import MemoryTable
    from registry.aliases import read_history
    from registry.store import open_registry

    model = f"two-machines-{uuid.uuid4().hex[:6]}"
    shared = {**s3_server.env, **mlflow_server.env, "KNNCLIP_CATALOG_URL": fresh_database(pg_server, "two_machines"),
              "KNNCLIP_MEMORY_URI": s3_server.uri(f"two-machines-{uuid.uuid4().hex[:6]}"),
              "KNNCLIP_PUBLISH__MODEL_NAME": model}
    results = _run_machines(tmp_path, shared)
    for k, v in machine_env(tmp_path / "checker", shared).items():
        monkeypatch.setenv(k, v)

    # rows: the memory holds every segment both machines catalogued, once, all curated
    with session_scope(shared["KNNCLIP_CATALOG_URL"]) as s:
        catalog_ids = set(s.exec(select(Segment.id)).all())
    assert len(catalog_ids) == sum(r["ingest"]["segments"] for r in results) > 0
    eid = results[0]["embed"]["embedder_id"]
    rows = MemoryTable.open(shared["KNNCLIP_MEMORY_URI"], eid, create=False).table.to_arrow()
    ids = rows.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(catalog_ids) and set(ids) == catalog_ids
    assert "pending" not in rows.column("state").to_pylist()
    embedded = [r["embed"]["embedded"] for r in results]  # usually both embed most segments: the same rows race
    assert sum(embedded) >= len(catalog_ids), embedded

    # versions: four distinct releases, all registered
    ctx = open_registry(load_settings())
    published = [p for r in results for p in r["publish"]]
    registered = {int(mv.version) for mv in ctx.client.search_model_versions(f"name = '{model}'")}
    assert not any(p["reused"] for p in published)
    assert registered == {p["version"] for p in published} and len(registered) == 4

    # alias history: every move recorded, once
    log = read_history(ctx, "race")["log"]
    expected = {f"{m}-move-{i}" for m in MACHINES for i in range(MOVES)}
    assert len(log) == 2 * MOVES and {e["action"] for e in log} == expected
    assert ctx.aliases()["race"] == log[-1]["version"]
    assert len(read_history(ctx, "staging")["log"]) == len(published)
    assert all(r["loaded"]["version"] in registered for r in results)
