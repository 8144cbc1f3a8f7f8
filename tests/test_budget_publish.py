"""A byte budget asked on the command line reaches publish: the published index fits it
(faiss's own code size, and the bytes of the index file), whatever the index choice would
be without a budget. One formula for a Flat index's bytes serves curation and publish."""
import json

import faiss
import numpy as np
from faiss.contrib.factory_tools import get_code_size

from knnclip_core.cli.main import main
from knnclip_core.embed_stage import run_embed
from knnclip_core.index.choice import estimate_bytes, flat_bytes
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.budget import vectors_for_budget
from knnclip_core.sample_data import write_sample_dataset


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_flat_bytes_is_what_faiss_writes_and_the_budget_uses_it():
    for n, d in ((0, 8), (1, 34), (257, 64)):
        ix = faiss.IndexFlatIP(d)
        ix.add(np.random.default_rng(0).random((n, d), dtype=np.float32))
        assert flat_bytes(n, d) == len(faiss.serialize_index(ix)) == estimate_bytes("flat", n, d)
    budget = flat_bytes(100, 64)
    assert vectors_for_budget(64, budget_mb=budget / 1e6) == 100  # exactly 100 fit, 101 do not
    assert vectors_for_budget(64, budget_mb=(budget - 1) / 1e6) == 99


def test_curate_budget_mb_flag_bounds_the_published_index(settings, workspace, tmp_path, monkeypatch, capsys):
    import knnclip_core.index.choice as choice
    from registry import load_release

    ingest_path(settings, write_sample_dataset(tmp_path / "a", images=6, classes=3, seed=4), progress=False)
    emb = run_embed(settings, backbone="classic", num_workers=0)
    dim = int(emb["embedder_id"].split("dim=")[1].split("|")[0])
    # Without a budget this memory would be published as HNSW32,Flat (far above the budget below).
    monkeypatch.setattr(choice, "FLAT_MAX_VECTORS", 1)
    budget_mb = flat_bytes(5, dim) / 1e6
    assert main(["curate", "--backbone", "classic", "--budget-mb", str(budget_mb), "--json"]) == 0
    cur = _last_json(capsys)
    assert main(["publish", "--backbone", "classic", "--json"]) == 0
    rel = _last_json(capsys)
    manifest = load_release(rel["version"], settings).snapshot.manifest
    n, factory = manifest["vectors"], manifest["factory"]
    budget = int(budget_mb * 1e6)
    assert manifest["build"]["byte_budget"] == budget
    assert get_code_size(dim, factory) * n <= budget, factory
    assert manifest["bytes"]["index"] <= budget, (factory, manifest["bytes"])
    assert factory == "Flat"
    assert cur["counts"]["kept"] == n == 5 and cur["counts"]["over_budget"] > 0, cur["counts"]
