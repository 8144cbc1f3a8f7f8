"""Snapshot folders: round trip against a numpy oracle, no pickle, every file verified."""
from __future__ import annotations

import json

import numpy as np
import pytest

from knnclip_core.errors import EmbedderMismatchError, VerificationError
from knnclip_core.index import build_snapshot, load_snapshot

EMB = "classic|lab-hist|none|mean|l2|dim=16"


def seeded(n=600, d=16, classes=("road", "sky", "tree"), seed=0):
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    names = [classes[i % len(classes)] for i in range(n)]
    return xb, [f"seg{i:05d}" for i in range(n)], names


@pytest.fixture
def snap_dir(tmp_path):
    xb, ids, names = seeded()
    build_snapshot(tmp_path / "snap", xb, ids, names, EMB, lineage={"lance_version": 7, "batches": ["b1"]})
    return tmp_path / "snap", xb, ids, names


def test_round_trip_matches_numpy_oracle(snap_dir):
    path, xb, ids, names = snap_dir
    snap = load_snapshot(path, expected_embedder_id=EMB)
    assert sorted(p.name for p in path.iterdir()) == ["index.faiss", "labels.parquet", "manifest.json", "vocabulary.json"]
    for p in path.iterdir():
        assert not p.read_bytes()[:1] == b"\x80", f"{p.name} looks like a pickle"
    m = snap.manifest
    assert (m["vectors"], m["classes"], m["dim"], m["metric"]) == (600, 3, 16, "cosine/ip")
    assert m["embedder_id"] == EMB == snap.embedder_id and snap.ntotal == 600
    assert m["lineage"]["lance_version"] == 7 and m["recall_at_10"] == 1.0
    assert m["class_counts"] == {"road": 200, "sky": 200, "tree": 200}
    assert set(m["files"]) == {"index.faiss", "labels.parquet", "vocabulary.json"}
    assert snap.vocabulary == ["road", "sky", "tree"] and snap.segment_ids == ids
    assert [snap.vocabulary[c] for c in snap.class_ids] == names
    xq = xb[:20] + 0.01
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    D, I = snap.search(xq, 4)
    S = xq @ xb.T
    Io = np.argsort(-S, axis=1)[:, :4]
    np.testing.assert_array_equal(I, Io)
    np.testing.assert_allclose(D, np.take_along_axis(S, Io, axis=1), atol=1e-5)
    assert list(snap.class_names_of(I[0])) == [names[i] for i in Io[0]]


def test_changed_byte_is_refused(snap_dir):
    path = snap_dir[0]
    raw = bytearray((path / "index.faiss").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (path / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(VerificationError, match="index.faiss .* does not match the checksum"):
        load_snapshot(path)


@pytest.mark.parametrize("name", ["labels.parquet", "vocabulary.json", "manifest.json"])
def test_missing_file_is_refused(snap_dir, name):
    path = snap_dir[0]
    (path / name).unlink()
    with pytest.raises(VerificationError, match=name.replace(".", r"\.")):
        load_snapshot(path)


def test_extra_file_and_edited_manifest_are_refused(snap_dir, tmp_path):
    path = snap_dir[0]
    (path / "model.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(VerificationError, match="unexpected file model.pkl"):
        load_snapshot(path)
    (path / "model.pkl").unlink()
    vocab = path / "vocabulary.json"
    vocab.write_text(json.dumps(["road", "sky", "forest"]))
    with pytest.raises(VerificationError, match="vocabulary.json"):
        load_snapshot(path)


def test_embedder_mismatch_is_refused(snap_dir):
    with pytest.raises(EmbedderMismatchError, match="built with embedder"):
        load_snapshot(snap_dir[0], expected_embedder_id="openclip|ViT-B-16|random-init|mean|l2|dim=16")


def test_existing_folder_and_bad_input_refused(snap_dir, tmp_path):
    xb, ids, names = seeded(n=50)
    with pytest.raises(FileExistsError):
        build_snapshot(snap_dir[0], xb, ids, names, EMB)
    with pytest.raises(ValueError, match="segment ids"):
        build_snapshot(tmp_path / "other", xb, ids[:-1], names, EMB)
    assert not (tmp_path / "other").exists()
