"""Snapshot: an immutable, verifiable folder holding a memory's FAISS index. No pickle:

- index.faiss      the index in faiss's own format (faiss.write_index)
- labels.parquet   row -> segment_id, class_id (index into the vocabulary)
- vocabulary.json  the class names, in class-id order
- manifest.json    embedder id and its provenance record (full backbone spec, weights
                   sha256; see embedders.provenance), dimension, metric, factory and build
                   parameters, counts, bytes, recall@10 vs exact Flat, lineage, creation
                   time, and the sha256 of every other file

`build_snapshot` writes one; `load_snapshot` verifies every file and returns a searcher.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import EmbedderMismatchError, VerificationError
from ..hashing import sha256_file
from .build import apply_search_params, build_index, check_vectors
from .choice import choose_index, flat_bytes

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INDEX_FILE = "index.faiss"
LABELS_FILE = "labels.parquet"
VOCAB_FILE = "vocabulary.json"
MANIFEST_FILE = "manifest.json"
DATA_FILES = (INDEX_FILE, LABELS_FILE, VOCAB_FILE)
METRIC = "cosine/ip"


def build_snapshot(out_dir: str | Path, xb: np.ndarray, segment_ids: Sequence[str], class_names: Sequence[str],
                   embedder_id: str, lineage: Optional[dict] = None, factory: Optional[str] = None,
                   byte_budget: Optional[int] = None, recall_floor: float = 0.95, seed: int = 0,
                   provenance: Optional[dict] = None, calibration: Optional[dict] = None) -> dict:
    """Build the index over xb (n, d) L2-normalised float32 and write a snapshot folder.

    `segment_ids` and `class_names` give one entry per row; the vocabulary is the sorted set
    of class names. `provenance` is the memory's provenance record (its embedder_id must be
    `embedder_id`). `calibration` is the release's confidence threshold record
    (segment.calibrate.calibrate), kept as the manifest's `calibration`. `factory` overrides
    the automatic index choice (see index.choice), which otherwise fits `byte_budget` bytes. Writes into a temporary sibling and renames, so
    `out_dir` (which must not exist) is either complete or absent. Returns the manifest dict.
    Raises RecallFloorError when recall@10 < recall_floor, ValueError on inconsistent input.
    """
    xb = check_vectors(xb)
    if provenance is not None and provenance.get("embedder_id") != embedder_id:
        raise EmbedderMismatchError(f"provenance of {provenance.get('embedder_id')!r} given for a snapshot "
                                    f"of {embedder_id!r}")
    n, d = xb.shape
    if len(segment_ids) != n or len(class_names) != n:
        raise ValueError(f"{n} vectors but {len(segment_ids)} segment ids and {len(class_names)} class names")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"snapshot folder {out_dir} already exists")
    vocabulary = sorted(set(map(str, class_names)))
    class_index = {name: i for i, name in enumerate(vocabulary)}
    class_ids = np.fromiter((class_index[str(c)] for c in class_names), dtype=np.int32, count=n)

    choice = choose_index(n, d, byte_budget=byte_budget, factory=factory)
    built = build_index(xb, choice, recall_floor=recall_floor, seed=seed)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        faiss.write_index(built.index, str(tmp / INDEX_FILE))
        table = pa.table({"row": pa.array(np.arange(n, dtype=np.int64)),
                          "segment_id": pa.array([str(s) for s in segment_ids], pa.string()),
                          "class_id": pa.array(class_ids)})
        pq.write_table(table, tmp / LABELS_FILE)
        (tmp / VOCAB_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False, indent=1))
        files = {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                 for name in DATA_FILES}
        counts = Counter(class_ids.tolist())
        index_bytes = files[INDEX_FILE]["bytes"]
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "embedder_id": embedder_id,
            "provenance": provenance,
            "dim": int(d),
            "metric": METRIC,
            "normalized": True,
            "factory": built.factory,
            "search_params": built.search_params,
            "build": {
                "chosen_by": choice.kind, "reason": choice.reason, "nlist": choice.nlist,
                "byte_budget": byte_budget, "recall_floor": recall_floor, "train_size": built.train_size,
                "seed": seed, "build_seconds": round(built.build_seconds, 3), "recall_curve": built.recall_curve,
                "faiss_version": faiss.__version__,
            },
            "vectors": int(n),
            "classes": len(vocabulary),
            "class_counts": {vocabulary[c]: int(k) for c, k in sorted(counts.items())},
            "bytes": {"index": index_bytes, "total": sum(f["bytes"] for f in files.values()),
                      "flat_equivalent": flat_bytes(n, d), "ratio_to_flat": round(index_bytes / flat_bytes(n, d), 4)},
            "recall_at_10": round(built.recall_at_10, 4),
            "recall_sample": built.recall_sample,
            "lineage": lineage or {},
            "files": files,
            **({"calibration": calibration} if calibration is not None else {}),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("snapshot %s: %d vectors, %d classes, %s, %d bytes", out_dir, n, len(vocabulary),
                built.factory, index_bytes)
    return manifest


def verify_snapshot(snapshot_dir: str | Path) -> dict:
    """Check the file list and the sha256 of every file listed in manifest.json.
    Returns the manifest; raises VerificationError naming the first bad file."""
    root = Path(snapshot_dir)
    mpath = root / MANIFEST_FILE
    if not mpath.is_file():
        raise VerificationError(f"snapshot {root} has no {MANIFEST_FILE}, so it cannot be verified")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise VerificationError(f"{MANIFEST_FILE} of snapshot {root} is not a valid manifest") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise VerificationError(f"snapshot {root} has format version {manifest.get('format_version')!r}, "
                                f"this knnclip reads version {FORMAT_VERSION}")
    if set(files) != set(DATA_FILES):
        raise VerificationError(f"manifest of snapshot {root} lists {sorted(files)}, expected {list(DATA_FILES)}")
    present = {p.name for p in root.iterdir()}
    extra = sorted(present - set(DATA_FILES) - {MANIFEST_FILE})
    if extra:
        raise VerificationError(f"snapshot {root} holds unexpected file {extra[0]} not covered by its manifest")
    for name, meta in files.items():
        path = root / name
        if not path.is_file():
            raise VerificationError(f"snapshot {root} is incomplete: {name} is missing")
        if path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            raise VerificationError(f"{name} of snapshot {root} does not match the checksum in its manifest "
                                    f"(changed or corrupted)")
    return manifest


class Snapshot:
    """A verified snapshot, ready to search: `.search(xq, k) -> (D, I)` over rows, with
    `.class_ids` (per row, into `.vocabulary`), `.segment_ids`, `.manifest`, `.embedder_id`."""

    def __init__(self, path: Path, index: faiss.Index, class_ids: np.ndarray, segment_ids: list[str],
                 vocabulary: list[str], manifest: dict):
        self.path = path
        self.index = index
        self.class_ids = class_ids
        self.segment_ids = segment_ids
        self.vocabulary = vocabulary
        self.manifest = manifest

    @property
    def embedder_id(self) -> str:
        return self.manifest["embedder_id"]

    @property
    def provenance(self) -> Optional[dict]:
        """The manifest's provenance record; None for snapshots written before it was kept."""
        return self.manifest.get("provenance")

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine for each query row of xq (nq, d), L2-normalised float32.
        Returns (D, I), both (nq, k); I is -1 where fewer than k rows were found."""
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        assert xq.ndim == 2 and xq.shape[1] == self.dim, f"expected (nq, {self.dim}) queries, got {xq.shape}"
        assert k > 0
        return self.index.search(xq, k)

    def class_names_of(self, I: np.ndarray) -> np.ndarray:
        """Class names of result rows I (any shape); '' where I is -1."""
        names = np.array(list(self.vocabulary) + [""], dtype=object)
        return names[np.where(I >= 0, self.class_ids[np.clip(I, 0, None)], len(self.vocabulary))]

    def __repr__(self) -> str:
        return (f"Snapshot({self.path}, {self.ntotal} vectors, {len(self.vocabulary)} classes, "
                f"{self.manifest.get('factory')})")


def load_snapshot(snapshot_dir: str | Path, expected_embedder_id: Optional[str] = None) -> Snapshot:
    """Verify (file list, every sha256, embedder id) and load a snapshot folder.

    Raises VerificationError for a missing, extra or changed file, and EmbedderMismatchError
    when `expected_embedder_id` is given and differs from the manifest's."""
    root = Path(snapshot_dir)
    manifest = verify_snapshot(root)
    if expected_embedder_id is not None and manifest["embedder_id"] != expected_embedder_id:
        raise EmbedderMismatchError(f"snapshot {root} was built with embedder {manifest['embedder_id']!r}, "
                                    f"but this process embeds with {expected_embedder_id!r}")
    index = faiss.read_index(str(root / INDEX_FILE))
    apply_search_params(index, manifest.get("search_params") or {})
    table = pq.read_table(root / LABELS_FILE)
    vocabulary = json.loads((root / VOCAB_FILE).read_text())
    class_ids = table.column("class_id").to_numpy().astype(np.int64)
    if index.ntotal != manifest["vectors"] or len(class_ids) != index.ntotal or index.d != manifest["dim"]:
        raise VerificationError(f"snapshot {root} is inconsistent: index holds {index.ntotal} x {index.d}, "
                                f"labels {len(class_ids)} rows, manifest {manifest['vectors']} x {manifest['dim']}")
    if len(class_ids) and (class_ids.min() < 0 or class_ids.max() >= len(vocabulary)):
        raise VerificationError(f"labels of snapshot {root} point outside its vocabulary")
    return Snapshot(root, index, class_ids, table.column("segment_id").to_pylist(), vocabulary, manifest)
