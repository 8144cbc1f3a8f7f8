"""Provenance as data: full backbone spec + weights checksum stored with the memory and the
snapshot, and resolution by comparing specs (no id parsing); pooling values checked; one
family registry; a broken backbones.yaml or missing weights surface as clear errors."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from knnclip_core.embedders import FAMILIES, EmbedderFamily, embedder_id_for, embedder_provenance, get_spec
from knnclip_core.embedders.backbones import list_backbones
from knnclip_core.errors import EmbedderMismatchError, WeightsNotFoundError
from knnclip_core.index import build_snapshot, load_snapshot
from knnclip_core.memory.curate import curate, default_dedup_threshold
from knnclip_core.memory.published import load_kept
from knnclip_core.memory.resolve import resolve_embedder_id
from knnclip_core.memory.synthetic import clustered_vectors, write_memory
from knnclip_core.memory.table import MemoryTable
from knnclip_core.segment.release import backbone_for_snapshot

CLASSIC = """
{name}:
  family: classic
  architecture: classic-v1
  weights: none
  max_side: {side}
"""


def backbones_file(tmp_path, monkeypatch, text):
    path = tmp_path / "backbones.yaml"
    path.write_text(text)
    monkeypatch.setattr("knnclip_core.embedders.backbones.BACKBONES_FILE", path)
    return path


def test_memory_and_snapshot_carry_the_full_spec(tmp_path, workspace, settings):
    record = embedder_provenance("classic")
    assert record["backbone"] == get_spec("classic").as_dict() and record["weights_sha256"] is None
    assert record["embedder_id"] == embedder_id_for("classic")
    xb, labels = clustered_vectors(40, 38, 2, seed=3)
    write_memory(workspace.memory_dir, record["embedder_id"], xb, labels, provenance=record)
    assert MemoryTable.open(workspace.memory_dir, record["embedder_id"]).provenance() == record
    curate(settings, workspace, "classic")
    kept = load_kept(workspace, record["embedder_id"])
    assert kept.provenance == record
    build_snapshot(tmp_path / "snap", kept.vectors, kept.ids, kept.class_names, kept.embedder_id,
                   provenance=kept.provenance, factory="Flat")
    snap = load_snapshot(tmp_path / "snap")
    assert snap.provenance == record and backbone_for_snapshot(snap) == "classic"
    with pytest.raises(EmbedderMismatchError):
        build_snapshot(tmp_path / "other", kept.vectors, kept.ids, kept.class_names, "another|id", provenance=record)


def test_snapshot_resolves_by_spec_not_by_id_prefix(tmp_path, monkeypatch):
    backbones_file(tmp_path, monkeypatch, CLASSIC.format(name="classic-320", side=320)
                   + CLASSIC.format(name="classic-full", side=640))
    record = embedder_provenance("classic-full")
    xb = np.eye(38, dtype=np.float32)[:4]
    build_snapshot(tmp_path / "snap", xb, list("abcd"), list("xxyy"), record["embedder_id"],
                   provenance=dict(record, backbone=dict(record["backbone"], name="renamed")), factory="Flat")
    assert backbone_for_snapshot(load_snapshot(tmp_path / "snap")) == "classic-full"
    backbones_file(tmp_path, monkeypatch, CLASSIC.format(name="classic-320", side=320))
    with pytest.raises(EmbedderMismatchError, match="no configured backbone reproduces"):
        backbone_for_snapshot(load_snapshot(tmp_path / "snap"))


def test_snapshot_weights_are_compared_by_checksum(tmp_path, monkeypatch):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"weights one")
    backbones_file(tmp_path, monkeypatch, f"local:\n  family: open_clip\n  architecture: knnclip-tiny-vit\n"
                                          f"  weights: {ckpt}\n  input_size: 64\n")
    spec = get_spec("local")
    from knnclip_core.embedders.provenance import make_provenance

    record = make_provenance(spec, hashlib.sha256(b"weights one").hexdigest(), "local|id")
    build_snapshot(tmp_path / "snap", np.eye(8, dtype=np.float32)[:4], list("abcd"), list("xxyy"), "local|id",
                   provenance=record, factory="Flat")
    snap = load_snapshot(tmp_path / "snap")
    assert backbone_for_snapshot(snap) == "local"
    ckpt.write_bytes(b"weights two, retrained")
    with pytest.raises(EmbedderMismatchError):
        backbone_for_snapshot(snap)
    ckpt.unlink()
    with pytest.raises(WeightsNotFoundError):
        backbone_for_snapshot(snap)


def test_old_snapshot_without_provenance_or_backbone_is_refused(tmp_path):
    build_snapshot(tmp_path / "snap", np.eye(8, dtype=np.float32)[:4], list("abcd"), list("xxyy"),
                   embedder_id_for("classic"), factory="Flat")
    with pytest.raises(EmbedderMismatchError, match="name its backbone explicitly"):
        backbone_for_snapshot(load_snapshot(tmp_path / "snap"))


def test_memory_resolves_by_spec(tmp_path, monkeypatch, workspace):
    backbones_file(tmp_path, monkeypatch, CLASSIC.format(name="classic-320", side=320)
                   + CLASSIC.format(name="classic-full", side=640))
    xb, labels = clustered_vectors(20, 38, 2, seed=1)
    for name in ("classic-320", "classic-full"):
        rec = embedder_provenance(name)
        write_memory(workspace.memory_dir, rec["embedder_id"], xb, labels, provenance=rec)
    assert resolve_embedder_id(workspace, "classic-full") == embedder_id_for("classic-full")
    assert resolve_embedder_id(workspace, "classic-320") == embedder_id_for("classic-320")


def test_missing_weights_are_not_reported_as_no_memory(tmp_path, monkeypatch, workspace):
    backbones_file(tmp_path, monkeypatch, "gone:\n  family: open_clip\n  architecture: knnclip-tiny-vit\n"
                                          f"  weights: {tmp_path / 'absent.pt'}\n  input_size: 64\n")
    xb, labels = clustered_vectors(20, 16, 2, seed=1)
    write_memory(workspace.memory_dir, "old|table|without|provenance", xb, labels)  # an old table: id only
    with pytest.raises(WeightsNotFoundError, match="absent.pt"):
        resolve_embedder_id(workspace, "gone")


def test_unknown_pooling_is_refused_naming_the_backbone(tmp_path, monkeypatch):
    path = backbones_file(tmp_path, monkeypatch, CLASSIC.format(name="maxed", side=64) + "  pooling: max\n")
    with pytest.raises(ValueError, match=r"backbone 'maxed'.*unknown pooling 'max'.*allowed: mask_mean"):
        list_backbones(path)


def test_broken_backbones_file_is_an_error_not_the_fallback_threshold(tmp_path, monkeypatch, settings):
    backbones_file(tmp_path, monkeypatch, "classic:\n  family: classic\n   architecture: [oops\n")
    from knnclip_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"backbones.yaml line 3: mapping values are not allowed"):
        default_dedup_threshold(settings, "classic")
    backbones_file(tmp_path, monkeypatch, CLASSIC.format(name="classic", side=64) + "  dedup_threshold: 0.9\n")
    assert default_dedup_threshold(settings, "classic") == 0.9
    assert default_dedup_threshold(settings, "some|embedder|id") == 0.98


def test_one_family_registry_builds_and_names(tmp_path, monkeypatch):
    classic = FAMILIES.get("classic")
    assert isinstance(classic, EmbedderFamily)
    assert classic.id_for(get_spec("classic")) == classic.build(get_spec("classic"), "cpu", None).id
    import knnclip_core.embedders as emb

    assert not hasattr(emb, "FAMILY_IDS")
