"""Seeded synthetic memories for tests, demos and benchmarks (no embedder needed)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import numpy as np

from .table import MemoryTable, make_rows

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def clustered_vectors(n: int, d: int, classes: int, dup_rate: float = 0.2, conflict_rate: float = 0.1,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(xb (n, d) float32 L2-normalised, labels (n,) int64): one cluster per class, with a
    fraction `dup_rate` of rows being near-duplicates (cosine ~0.99) of earlier rows, and a
    fraction `conflict_rate` of those carrying another label."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    xb = centres[labels] + 1.5 * rng.standard_normal((n, d)).astype(np.float32)
    for i in range(1, n):
        if rng.random() < dup_rate:
            src = int(rng.integers(0, i))
            xb[i] = xb[src] / np.linalg.norm(xb[src]) + 0.05 * rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
            labels[i] = labels[src]
            if classes > 1 and rng.random() < conflict_rate:
                labels[i] = (labels[src] + 1) % classes
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    return xb.astype(np.float32), labels.astype(np.int64)


def write_memory(db_dir: str | Path, embedder_id: str, xb: np.ndarray, labels: np.ndarray,
                 datasets: Optional[list[str]] = None, batches: Optional[list[str]] = None,
                 id_prefix: str = "seg", provenance: Optional[dict] = None) -> list[str]:
    """Write rows (state PENDING) through MemoryTable.insert_missing; row i gets id f"{id_prefix}{i:06d}",
    class f"class{label}", image sha f"img{i // 4}", ingested_at EPOCH + i seconds. A new table
    records `provenance`. Returns the ids."""
    n = len(xb)
    datasets = datasets or ["synthetic"] * n
    batches = batches or ["batch0"] * n
    ids = [f"{id_prefix}{i:06d}" for i in range(n)]
    meta = [{"id": ids[i], "class_id": int(labels[i]), "class_name": f"class{int(labels[i])}",
             "dataset": datasets[i], "batch_id": batches[i], "image_sha256": f"img{i // 4}", "area": 100 + i,
             "ingested_at": EPOCH + timedelta(seconds=i)} for i in range(n)]
    mt = MemoryTable.open(db_dir, embedder_id, xb.shape[1], provenance=provenance)
    mt.insert_missing(make_rows(embedder_id, xb, meta))
    return ids
