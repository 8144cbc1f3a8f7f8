"""Ingest end to end: idempotency, quarantine of every kind of bad item, CLI contract."""
import json
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from sqlmodel import select

from knnclip_core.catalog import IngestBatch, Quarantine, Segment, session_scope
from knnclip_core.config import load_settings
from knnclip_core.ingest import ingest_path
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.workspace import Workspace

from fixture_datasets import write_instances


def _segments_in(folder, ignore=()):
    """Oracle: one segment per distinct mask value, per mask file."""
    total = 0
    for mask in sorted((folder / "masks").iterdir()):
        total += len(set(np.unique(np.asarray(Image.open(mask))).tolist()) - set(ignore))
    return total


def test_ingest_twice_adds_nothing_the_second_time(settings, tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=6, classes=4)
    first = ingest_path(settings, root, min_area=1, progress=False)
    assert first.images == 6 and first.segments == _segments_in(root) == first.new_segments
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks").iterdir())]
    assert first.classes == len(set(np.unique(np.concatenate([m.ravel() for m in masks])).tolist()))
    second = ingest_path(settings, root, min_area=1, progress=False)
    assert second.segments == first.segments and second.new_segments == 0
    assert "nothing new" in second.summary()
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        assert len(s.exec(select(Segment)).all()) == first.segments
        assert [b.status for b in s.exec(select(IngestBatch)).all()] == ["done", "done"]


def test_min_area_drops_and_counts(settings, tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=4, classes=4)
    everything = ingest_path(settings, root, min_area=1, progress=False)
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks").iterdir())]
    limit = 400
    small = sum(int(((m == v).sum() < limit)) for m in masks for v in np.unique(m))
    other = load_settings(home=tmp_path / "other")
    r = ingest_path(other, root, min_area=limit, progress=False)
    assert r.skipped_small == small and r.segments == everything.segments - small


def _bad_semantic_batch(root):
    """A semantic-png batch of 6 good images plus one of each kind of bad item."""
    write_sample_dataset(root, images=6, classes=4, seed=3)
    img, msk = root / "images", root / "masks"
    data = (img / "scene_3_0000.png").read_bytes()
    (img / "truncated.png").write_bytes(data[: len(data) // 2])
    shutil.copy(msk / "scene_3_0000.png", msk / "truncated.png")
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(img / "mismatch.png")
    shutil.copy(msk / "scene_3_0001.png", msk / "mismatch.png")
    pixels = np.asarray(Image.open(img / "scene_3_0002.png")).copy()
    pixels[0, 0] = 255 - pixels[0, 0]  # another image (another sha256) with the same labels
    Image.fromarray(pixels).save(img / "unknown.png")
    labels = np.asarray(Image.open(msk / "scene_3_0002.png")).copy()
    labels[:5, :5] = 77  # not in classes.txt
    Image.fromarray(labels).save(msk / "unknown.png")
    (img / "notes.png").write_text("this is not an image")
    shutil.copy(msk / "scene_3_0003.png", msk / "notes.png")
    Image.fromarray(np.zeros((400, 400, 3), np.uint8)).save(img / "huge.png")
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(msk / "huge.png")  # under the limit: the image is refused
    return root


def test_bad_items_quarantined_valid_items_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("KNNCLIP_INGEST__MAX_PIXELS", "100000")  # 400x400 is over, 128x96 is under
    settings = load_settings(home=tmp_path / "ws")
    clean = write_sample_dataset(tmp_path / "clean", images=6, classes=4, seed=3)
    expected_valid = _segments_in(clean) + len(np.unique(np.asarray(Image.open(clean / "masks/scene_3_0002.png"))))
    root = _bad_semantic_batch(tmp_path / "bad")
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.reasons == {"truncated_image": 1, "size_mismatch": 1, "unknown_label": 1, "not_an_image": 1,
                         "too_many_pixels": 1}
    # the unknown.png image keeps its valid segments; only the value-77 segment is quarantined
    assert r.segments == expected_valid and r.images == 7
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        rows = s.exec(select(Quarantine)).all()
    by_reason = {q.reason: q for q in rows}
    assert "truncated.png" in by_reason["truncated_image"].message
    assert "huge.png" in by_reason["too_many_pixels"].message and "400x400" in by_reason["too_many_pixels"].message
    assert "value 77" in by_reason["unknown_label"].item
    assert "notes.png" in by_reason["not_an_image"].message
    assert "mismatch.png" in by_reason["size_mismatch"].message and "50x50" in by_reason["size_mismatch"].message


def test_coco_instances_path_escape_empty_mask_and_crowd(settings, tmp_path):
    (tmp_path / "secret.jpg").write_bytes(b"")
    path = write_instances(
        tmp_path / "coco",
        extra_images=[{"id": 8, "file_name": "../../secret.jpg", "height": 40, "width": 50}],
        extra_anns=[{"id": 9, "image_id": 8, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 5, 0, 5, 5]]},
                    {"id": 10, "image_id": 7, "category_id": 2, "iscrowd": 0, "segmentation": [[60, 60, 70, 60, 70, 70]]},
                    {"id": 11, "image_id": 7, "category_id": 99, "iscrowd": 0, "segmentation": [[0, 20, 9, 20, 9, 29]]}])
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.skipped_crowd == 1
    assert r.reasons == {"path_outside_root": 1, "empty_mask": 1, "unknown_label": 1}
    assert r.images == 1 and r.segments == 3 and r.classes == 2
    assert any("../../secret.jpg" in e["item"] for e in r.examples)


def test_cli_json_contract_and_errors(tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=3, classes=3)
    env = {"KNNCLIP_HOME": str(tmp_path / "ws"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "ingest", str(root), "--json"],
                         capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("batch_id", "images", "segments", "new_segments", "classes", "quarantined", "reasons",
                "skipped_crowd", "skipped_small"):
        assert key in result
    assert result["images"] == 3 and result["quarantined"] == 0
    bad = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "ingest", str(tmp_path / "missing")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
