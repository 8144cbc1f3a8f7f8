"""Publishing a real curated memory: the release holds exactly the kept rows, and
publishing an unchanged memory again gives the same release (needed to resume a run)."""
import numpy as np

from knnclip_core.embed_stage import run_embed
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.curate import curate
from knnclip_core.memory.published import load_kept
from knnclip_core.sample_data import write_sample_dataset
from registry import load_release
from registry.publish import publish


def test_publish_is_exact_and_idempotent(settings, workspace, tmp_path):
    ingest_path(settings, write_sample_dataset(tmp_path / "a", images=6, classes=3, seed=4), progress=False)
    emb = run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    first = publish(settings, workspace, backbone="classic")
    assert first["version"] == 1 and not first["reused"] and first["alias"] == "staging"
    kept = load_kept(workspace, emb["embedder_id"])
    release = load_release(1, settings, embedder_id=emb["embedder_id"])
    assert sorted(release.snapshot.segment_ids) == sorted(kept.ids)
    from knnclip_core.embedders import embedder_provenance, get_spec

    assert release.snapshot.provenance == kept.provenance == embedder_provenance("classic")  # spec + weights as data
    assert release.snapshot.provenance["backbone"] == get_spec("classic").as_dict()
    # nearest neighbour of each kept vector is itself
    D, I = release.snapshot.search(np.asarray(kept.vectors, np.float32), 1)
    assert [release.snapshot.segment_ids[i] for i in I[:, 0]] == list(kept.ids)

    again = publish(settings, workspace, backbone="classic")
    assert again["reused"] and again["version"] == 1

    ingest_path(settings, write_sample_dataset(tmp_path / "b", images=4, classes=4, seed=5), progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    second = publish(settings, workspace, backbone="classic")
    assert second["version"] == 2 and not second["reused"] and second["previous"] == 1


def test_publish_without_backbone_takes_the_memory_as_curate_does(settings, workspace, tmp_path):
    import pytest

    from knnclip_core.errors import InputError
    from knnclip_core.memory.synthetic import clustered_vectors, write_memory

    assert settings.embed.backbone != "classic"  # the configured backbone has no memory here
    ingest_path(settings, write_sample_dataset(tmp_path / "a", images=3, classes=2, seed=4), progress=False)
    emb = run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace)  # the only memory
    res = publish(settings, workspace)
    assert res["embedder_id"] == emb["embedder_id"]
    assert load_release(res["version"], settings).snapshot.manifest["lineage"]["backbone"] == "classic"
    xb, labels = clustered_vectors(20, 8, 2, dup_rate=0.0, seed=1)  # a second memory: now ambiguous
    write_memory(workspace.memory_dir, "other|tiny|random-init|mean|l2|dim=8", xb, labels)
    with pytest.raises(InputError, match="no memory for backbone"):
        publish(settings, workspace)
    settings.embed.backbone = "classic"  # several memories: the configured backbone's
    assert publish(settings, workspace)["embedder_id"] == emb["embedder_id"]


PUBLISHER = """
import json, os, sys, time
from pathlib import Path
from knnclip_core.config import load_settings
from knnclip_core.workspace import Workspace
from registry.publish import publish
settings = load_settings()
ws = Workspace.from_settings(settings).ensure()
go = Path(sys.argv[1])
Path(sys.argv[2]).touch()  # ready: imports done
while not go.exists():
    time.sleep(0.01)
print(json.dumps(publish(settings, ws, backbone="classic")))
"""


def test_two_publishers_of_one_memory_make_one_release(settings, workspace, tmp_path):
    """Two processes publish the same memory at the same moment: the publish lock makes the
    second wait and reuse the first's version (without it both found no match and registered two)."""
    import json
    import os
    import subprocess
    import sys
    import time

    from registry.store import open_registry

    ingest_path(settings, write_sample_dataset(tmp_path / "a", images=6, classes=3, seed=4), progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    open_registry(settings, workspace)  # the store's schema exists before the race
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, str(go), str(tmp_path / f"ready{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert {r["version"] for r in results} == {1}
    assert sorted(r["reused"] for r in results) == [False, True]
    ctx = open_registry(settings, workspace)
    assert [int(mv.version) for mv in ctx.client.search_model_versions(f"name = '{ctx.model_name}'")] == [1]
