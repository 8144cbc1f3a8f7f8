"""insert_missing redoes a merge that a concurrent writer's commit made stale, on the newest
version of the table, instead of failing the embed."""
from __future__ import annotations

from datetime import timedelta

import lancedb
import pytest

from knnclip_core.memory.synthetic import EPOCH, clustered_vectors
from knnclip_core.memory.table import MemoryTable, make_rows
from knnclip_core.store_errors import is_commit_conflict

EID = "test|tiny|random-init|mean|l2|dim=16"


def _rows(n: int, prefix: str = "s"):
    xb, labels = clustered_vectors(n, 16, 4, seed=3)
    meta = [{"id": f"{prefix}{i:04d}", "class_id": int(labels[i]), "class_name": f"c{int(labels[i])}", "dataset": "d",
             "batch_id": "b", "image_sha256": f"img{i}", "area": 10, "ingested_at": EPOCH + timedelta(seconds=i)}
            for i in range(n)]
    return make_rows(EID, xb, meta)


def test_a_merge_made_stale_by_another_writer_is_redone(tmp_path):
    mt = MemoryTable.open(tmp_path, EID, 16)
    mt.insert_missing(_rows(5, "old"))
    # another writer replaces the table while `mt` still points at the older version, so
    # Lance refuses mt's next merge ("incompatible with concurrent transaction Overwrite")
    lancedb.connect(str(tmp_path)).create_table(mt.name, schema=mt.table.schema, mode="overwrite")
    mt.insert_missing(_rows(20))
    ids = MemoryTable.open(tmp_path, EID, create=False).column("id")
    assert sorted(ids) == [f"s{i:04d}" for i in range(20)]


@pytest.mark.parametrize("text, conflict", [
    ("lance error: Incompatible transaction: This Update transaction is incompatible with concurrent "
     "transaction Overwrite at version 2.", True),
    ("Retryable commit conflict for version 7", True),
    ("lance error: Invalid user input: vector column contains NaN", False),
    ("No space left on device", False),
])
def test_only_commit_races_count_as_conflicts(text, conflict):
    assert is_commit_conflict(RuntimeError(text)) is conflict
