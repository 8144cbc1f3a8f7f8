"""Sharded embedding (used by parallel Dask workers) covers exactly what one run covers."""
import numpy as np

from knnclip_core.config import load_settings
from knnclip_core.embed_stage import in_shard, run_embed
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.table import MemoryTable
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.workspace import Workspace


def _vectors(settings, embedder_id):
    t = MemoryTable.open(Workspace.from_settings(settings).memory_dir, embedder_id, create=False).table.to_arrow()
    return dict(zip(t.column("id").to_pylist(), np.stack(t.column("vector").to_numpy(zero_copy_only=False))))


def test_shards_partition_the_work(tmp_path):
    data = write_sample_dataset(tmp_path / "d", images=6, classes=3)
    one, two = load_settings(home=tmp_path / "one"), load_settings(home=tmp_path / "two")
    for s in (one, two):
        ingest_path(s, data, progress=False)
    full = run_embed(one, backbone="classic", num_workers=0)
    a = run_embed(two, backbone="classic", num_workers=0, shard=(0, 2))
    b = run_embed(two, backbone="classic", num_workers=0, shard=(1, 2))
    assert a["embedded"] + b["embedded"] == full["embedded"] == full["segments"]
    va, vb = _vectors(one, full["embedder_id"]), _vectors(two, full["embedder_id"])
    assert va.keys() == vb.keys()
    assert all(np.array_equal(va[k], vb[k]) for k in va)


def test_every_image_is_in_exactly_one_shard():
    shas = [f"{i:064x}" for i in range(0, 10**6, 9973)]
    for n in (1, 2, 3):
        assert all(sum(in_shard(s, (i, n)) for i in range(n)) == 1 for s in shas)
