"""FAISS index snapshots: index choice by size and byte budget, build with a recall check,
and a verified, pickle-free snapshot folder with a searcher (no MLflow here)."""
from .build import RecallFloorError, build_index, exact_knn, recall_at_k
from .choice import INDEX_KINDS, IndexChoice, choose_index, estimate_bytes, flat_bytes
from .snapshot import Snapshot, build_snapshot, load_snapshot, sha256_file, verify_snapshot

__all__ = [
    "INDEX_KINDS", "IndexChoice", "RecallFloorError", "Snapshot", "build_index", "build_snapshot",
    "choose_index", "estimate_bytes", "exact_knn", "flat_bytes", "load_snapshot", "recall_at_k",
    "sha256_file", "verify_snapshot",
]
