"""The `embed` job on a tiny ingested catalog: rows, resumability, missing images,
refusing another embedder id, and the CLI."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from knnclip_core.catalog.models import Image
from knnclip_core.catalog.store import session_scope
from knnclip_core.embedders import get_embedder
from knnclip_core.embed_stage import run_embed
from knnclip_core.errors import EmbedderMismatchError
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.table import PENDING, MemoryTable, make_rows
from knnclip_core.sample_data import write_sample_dataset


@pytest.fixture
def catalog(settings, workspace, tmp_path):
    root = write_sample_dataset(tmp_path / "sample", images=5, classes=4, seed=1)
    report = ingest_path(settings, root, min_area=1, progress=False)
    return report


def test_embed_writes_every_segment_once_and_resumes(settings, workspace, catalog):
    first = run_embed(settings, backbone="tiny-vit-random", device="cpu", num_workers=0, chunk_segments=4)
    assert first["embedded"] == first["segments"] > 0 and first["skipped_existing"] == 0
    assert first["images"] == 5 and first["failed_images"] == 0
    emb = get_embedder("tiny-vit-random", device="cpu")
    table = MemoryTable.open(workspace.memory_dir, emb.id, create=False)
    assert table.count() == first["segments"] and first["table"] == table.name
    assert set(table.column("state")) == {PENDING}
    assert set(table.column("dataset")) == {"sample"}
    again = run_embed(settings, backbone="tiny-vit-random", device="cpu", num_workers=0)
    assert again["embedded"] == 0 and again["images"] == 0 and again["skipped_existing"] == first["segments"]
    assert table.count() == first["segments"]


def test_rerun_after_partial_run_does_only_the_missing(settings, workspace, catalog):
    emb = get_embedder("tiny-vit-random", device="cpu")
    full = run_embed(settings, embedder=emb, num_workers=0)
    table = MemoryTable.open(workspace.memory_dir, emb.id, create=False)
    vectors = {r["id"]: r["vector"] for r in table.table.to_arrow().to_pylist()}
    table.table.delete("class_name = '%s'" % table.column("class_name")[0])  # as if killed mid-way
    left = table.count()
    redo = run_embed(settings, embedder=emb, num_workers=0)
    assert redo["embedded"] == full["segments"] - left and redo["skipped_existing"] == left
    table = MemoryTable.open(workspace.memory_dir, emb.id, create=False)  # a fresh handle sees the new version
    again = {r["id"]: r["vector"] for r in table.table.to_arrow().to_pylist()}
    assert again.keys() == vectors.keys()
    for k in vectors:
        np.testing.assert_allclose(again[k], vectors[k], atol=1e-5)


def test_missing_image_files_are_counted_and_named(settings, workspace, catalog):
    with session_scope(workspace.catalog_url) as s:
        path = s.exec(__import__("sqlmodel").select(Image.path)).first()
    os.remove(path)
    out = run_embed(settings, backbone="classic", num_workers=0)
    assert out["failed_images"] == 1 and out["missing_images"] == [path]
    assert out["embedded"] < out["segments"] and out["embedded"] > 0


def test_table_refuses_vectors_of_another_embedder(settings, workspace, catalog):
    run_embed(settings, backbone="classic", num_workers=0)
    classic = get_embedder("classic")
    table = MemoryTable.open(workspace.memory_dir, classic.id, create=False)
    row = table.table.to_arrow().slice(0, 1).to_pylist()[0]
    meta = {k: row[k] for k in ("id", "class_id", "class_name", "dataset", "batch_id", "image_sha256", "area",
                                "ingested_at")}
    other = get_embedder("tiny-convnext-random", device="cpu")
    with pytest.raises(EmbedderMismatchError):
        table.insert_missing(make_rows(other.id, np.zeros((1, classic.dim), np.float32), [meta]))


def test_cli_backbones_and_embed_json(settings, workspace, catalog, capsys):
    from knnclip_core.cli.main import main

    assert main(["backbones", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["name"] for r in rows if r["default"]] == ["classic-v2"]
    assert main(["embed", "--backbone", "classic", "--num-workers", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["embedded"] == out["segments"] and out["embedder_id"].startswith("classic|")
    assert main(["embed", "--backbone", "vit-b-32-openai", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not available offline" in err and "Traceback" not in err
