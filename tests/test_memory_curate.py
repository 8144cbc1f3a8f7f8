"""curate: idempotency, tags and catalog runs, load_kept, stats/history, embedder checks, CLI."""
from __future__ import annotations

import json

import lancedb
import numpy as np
import pytest

from knnclip_core.cli.main import main as cli_main
from knnclip_core.errors import EmbedderMismatchError, InputError
from knnclip_core.index.choice import flat_bytes
from knnclip_core.memory.curate import curate
from knnclip_core.memory.published import load_kept
from knnclip_core.memory.stats import memory_history, memory_stats
from knnclip_core.memory.synthetic import clustered_vectors, write_memory
from knnclip_core.memory.table import MemoryTable, make_rows, memory_schema, table_name_for

EID = "test|tiny|random-init|mean|l2|dim=16"


def states_of(ws, eid=EID):
    t = MemoryTable.open(ws.memory_dir, eid).table.to_arrow()
    return dict(zip(t.column("id").to_pylist(), zip(t.column("state").to_pylist(), t.column("state_reason").to_pylist())))


def test_curate_is_idempotent_and_versioned(settings, workspace):
    xb, labels = clustered_vectors(300, 16, 4, dup_rate=0.2, conflict_rate=0.1, seed=5)
    ids = write_memory(workspace.memory_dir, EID, xb, labels)
    r1 = curate(settings, workspace, budget_vectors=150)
    s1 = states_of(workspace)
    assert r1["changed_rows"] == 300 and sum(r1["counts"].values()) == 300
    assert r1["counts"]["duplicate"] > 0 and r1["counts"]["conflict"] > 0 and r1["counts"]["kept"] == 150
    r2 = curate(settings, workspace, budget_vectors=150)
    assert states_of(workspace) == s1 and r2["changed_rows"] == 0
    assert r2["counts"] == r1["counts"] and r2["lance_tag"] != r1["lance_tag"]
    mt = MemoryTable.open(workspace.memory_dir, EID)
    assert mt.count() == 300 and len(mt.ids()) == 300
    tags = mt.table.tags.list()
    assert {r1["lance_tag"], r2["lance_tag"]} <= set(tags)
    # writing the same rows again (the embed job re-run) neither duplicates a row nor resets its state
    write_memory(workspace.memory_dir, EID, xb, labels)
    assert mt.count() == 300 and states_of(workspace) == s1
    curate(settings, workspace, budget_vectors=150)
    assert states_of(workspace) == s1
    # the kept memory at the first tag is what curate kept
    kept = load_kept(workspace, EID, tag=r1["lance_tag"])
    assert set(kept.ids) == {i for i, (s, _) in s1.items() if s == "kept"}
    assert kept.lance_version == r1["lance_version"]
    i = ids.index(kept.ids[0])
    np.testing.assert_allclose(kept.vectors[0], xb[i], atol=1e-6)
    assert kept.class_names[0] == f"class{labels[i]}" and kept.class_ids[0] == labels[i]
    hist = memory_history(workspace)
    assert [r["status"] for r in hist["runs"]] == ["done"] * 3
    assert hist["runs"][0]["lance_tag"] == r1["lance_tag"] and hist["runs"][0]["params"]["budget_vectors"] == 150
    st = memory_stats(workspace)["memories"][0]
    assert st["counts"]["kept"] == 150 and st["duplicates"] == r1["counts"]["duplicate"]
    assert st["kept_index_bytes"] == flat_bytes(150, 16) and sum(d["rows"] for d in st["per_class"].values()) == 300


def test_new_rows_are_curated_with_old_ones(settings, workspace):
    xb, labels = clustered_vectors(120, 16, 3, seed=6)
    write_memory(workspace.memory_dir, EID, xb[:80], labels[:80])
    curate(settings, workspace)
    before = states_of(workspace)
    write_memory(workspace.memory_dir, EID, xb, labels)  # 40 new rows, PENDING
    states = states_of(workspace)
    assert {i for i, (s, _) in states.items() if s == "pending"} == set(states) - set(before)
    assert all(states[i] == before[i] for i in before)  # curated rows keep their states
    curate(settings, workspace)
    after = states_of(workspace)
    assert len(after) == 120 and "pending" not in {s for s, _ in after.values()}
    # rows 0..79 keep their states unless a newer row made them a conflict
    assert all(after[i] == before[i] or after[i][0] == "conflict" for i in before)


def test_embedder_mismatch_refused(settings, workspace):
    xb, labels = clustered_vectors(20, 16, 2, seed=1)
    write_memory(workspace.memory_dir, EID, xb, labels)
    mt = MemoryTable.open(workspace.memory_dir, EID)
    other = "other|x|random-init|mean|l2|dim=16"
    meta = [{"id": "z", "class_id": 0, "class_name": "c", "dataset": "d", "batch_id": "b", "image_sha256": "h",
             "area": 1, "ingested_at": None}]
    with pytest.raises(EmbedderMismatchError):
        mt.insert_missing(make_rows(other, xb[:1], meta))
    with pytest.raises(EmbedderMismatchError):
        MemoryTable.open(workspace.memory_dir, EID, 32)
    # a table whose metadata names another embedder is refused by curate and load_kept
    db = lancedb.connect(str(workspace.memory_dir))
    forged = "forged|y|random-init|mean|l2|dim=16"
    db.create_table(table_name_for(forged), schema=memory_schema("somebody|else", 16))
    with pytest.raises(EmbedderMismatchError):
        curate(settings, workspace, forged)
    with pytest.raises(EmbedderMismatchError):
        load_kept(workspace, forged)


def test_backbone_resolution(settings, workspace):
    with pytest.raises(InputError, match="no memory"):
        curate(settings, workspace)
    xb, labels = clustered_vectors(20, 16, 2, seed=1)
    write_memory(workspace.memory_dir, EID, xb, labels)
    write_memory(workspace.memory_dir, "other|x|random-init|mean|l2|dim=16", xb, labels)
    with pytest.raises(InputError, match="--backbone"):
        curate(settings, workspace)
    with pytest.raises(InputError, match="never curated"):
        load_kept(workspace, EID)
    assert curate(settings, workspace, EID)["embedder_id"] == EID
    with pytest.raises(InputError, match="no memory for backbone 'test'"):
        curate(settings, workspace, "test")  # a family name is not a backbone: ids are not parsed
    with pytest.raises(InputError, match="no memory for backbone 'nosuch'"):
        curate(settings, workspace, "nosuch")
    with pytest.raises(InputError, match="no memory for backbone 'classic'"):
        curate(settings, workspace, "classic")


def test_cli_curate_stats_history(settings, workspace, capsys):
    xb, labels = clustered_vectors(60, 16, 3, seed=2)
    write_memory(workspace.memory_dir, EID, xb, labels)
    home = ["--home", str(workspace.home)]
    assert cli_main(home + ["curate", "--budget-vectors", "10", "--strategy", "diversity", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["counts"]["kept"] == 10 and rep["params"]["strategy"] == "diversity"
    assert cli_main(home + ["memory", "stats", "--json"]) == 0
    st = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert st["memories"][0]["counts"]["kept"] == 10
    assert cli_main(home + ["memory", "history", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert hist["runs"][0]["lance_tag"] == rep["lance_tag"]
    assert cli_main(home + ["curate", "--strategy", "nope"]) == 2
    assert "unknown curation strategy" in capsys.readouterr().err
    assert cli_main(home + ["curate"]) == 0 and "curation 2" in capsys.readouterr().out


def test_dedup_threshold_defaults_to_the_backbone(settings, monkeypatch):
    from knnclip_core.config import load_settings
    from knnclip_core.memory.curate import FALLBACK_DEDUP_THRESHOLD, default_dedup_threshold

    assert default_dedup_threshold(settings, "classic") == 0.995  # configs/backbones.yaml
    assert default_dedup_threshold(settings, "tiny-vit-random") == FALLBACK_DEDUP_THRESHOLD
    assert default_dedup_threshold(settings, "classic|v1|dim=38") == FALLBACK_DEDUP_THRESHOLD
    monkeypatch.setenv("KNNCLIP_CURATE__DEDUP_THRESHOLD", "0.9")
    assert default_dedup_threshold(load_settings(), "classic") == 0.9
