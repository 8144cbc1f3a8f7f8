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
