"""Regression tests of issue 12 (items 1-7): hostile input is quarantined item by item,
with a reason, and the valid items of the same batch are ingested."""
import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select

from knnclip_core.catalog import IngestBatch, Quarantine, Segment, session_scope
from knnclip_core.config import load_settings
from knnclip_core.embedders.rle_weights import parse_counts
from knnclip_core.errors import InputError
from knnclip_core.ingest import _BatchWriter, ingest_path
from knnclip_core.readers import open_reader
from knnclip_core.readers.regions import LabelMap, encode_mask
from knnclip_core.readers.safe_files import RefusedFile, open_regular
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.workspace import Workspace

from fixture_datasets import rgb, write_instances, write_panoptic


def _rows(settings, batch_id):
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        rows = [(q.item, q.reason, q.message) for q in s.exec(select(Quarantine).where(Quarantine.batch_id == batch_id))]
        status = s.get(IngestBatch, batch_id).status
    return rows, status


def _lying_png(path, width, height):
    """A 1x1 PNG whose header claims width x height."""
    import struct
    import zlib
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_non_utf8_file_names_are_quarantined_not_fatal(settings, tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=3, classes=3)
    for sub in ("images", "masks"):
        first = sorted((root / sub).iterdir())[0]
        os.link(first, os.fsencode(root / sub) + b"/bad\xff.png")
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.images == 3 and r.reasons == {"bad_name": 1}
    rows, status = _rows(settings, r.batch_id)
    assert status == "done" and "bad\\xff.png" in rows[0][0] and "not valid UTF-8" in rows[0][2]
    # a lone surrogate in a COCO file_name (JSON escape)
    path = write_instances(tmp_path / "coco", extra_images=[{"id": 8, "file_name": "b\udcff.jpg", "height": 40, "width": 50}],
                           extra_anns=[{"id": 9, "image_id": 8, "category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]]}])
    Image.fromarray(rgb(40, 50, 3)).save(os.fsencode(tmp_path / "coco/images") + b"/b\xff.jpg")
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.images == 1 and r.segments == 3 and r.reasons == {"bad_name": 1}


def test_huge_polygon_coordinates_are_refused_without_a_crash(tmp_path):
    """Coordinates of 1e9 made pycocotools segfault (exit 139, batch left running)."""
    path = write_instances(tmp_path / "coco", extra_anns=[
        {"id": 20, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 1e9, 0, 1e9, 1e9]]},
        {"id": 21, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 5, 0, 5, 5] * 5000]}])
    env = {**os.environ, "KNNCLIP_HOME": str(tmp_path / "ws")}
    out = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "ingest", str(path), "--images",
                          str(tmp_path / "coco/images"), "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["reasons"] == {"bad_segmentation": 2} and result["images"] == 1 and result["segments"] == 3
    messages = " ".join(e["message"] for e in result["examples"])
    assert "far outside the 50x40 image" in messages and "outline" in messages


def test_malformed_coco_entries_are_quarantined_one_by_one(settings, tmp_path):
    path = write_instances(
        tmp_path / "coco",
        extra_images=["not an object", {"id": "9", "file_name": "a.jpg", "height": 40, "width": 50},
                      {"id": 10, "file_name": "a.jpg", "height": "40", "width": 50}, {"id": [1], "file_name": "a.jpg"},
                      {"id": 7, "file_name": "a.jpg", "height": 40, "width": 50}],
        extra_anns=[[1, 2], {"id": 30, "image_id": [7], "segmentation": []},
                    {"id": 31, "image_id": 7, "category_id": "dog", "segmentation": [[0, 20, 9, 20, 9, 29]]}])
    data = json.loads(path.read_text())
    data["categories"] += [{"name": "no id"}, {"id": 5, "name": 12}]
    path.write_text(json.dumps(data))
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.images == 1 and r.segments == 3
    assert r.reasons == {"bad_annotation": 8, "duplicate_id": 1, "unknown_label": 1}
    rows, status = _rows(settings, r.batch_id)
    items = {item for item, _, _ in rows}
    assert status == "done" and {"instances_val2017.json images[1]", "instances_val2017.json images[3]",
                                 "instances_val2017.json annotations[5]", "instances_val2017.json categories[2]"} <= items
    assert all("\n" not in m and "Traceback" not in m for _, _, m in rows)
    # panoptic: segments_info not a list, a segment that is not an object, a string segment id
    pan = write_panoptic(tmp_path / "pan")
    data = json.loads(pan.read_text())
    data["annotations"][0]["segments_info"] = {"id": 1000}
    data["annotations"][1]["segments_info"] += [[5], {"id": "7", "category_id": 1}]
    pan.write_text(json.dumps(data))
    r = ingest_path(settings, pan, images=tmp_path / "pan/images", min_area=1, progress=False)
    assert r.images == 1 and r.segments == 3 and r.reasons == {"bad_annotation": 3}


@pytest.mark.parametrize("text, says", [
    ('{"images": ' + "[" * 100000 + "]" * 100000 + ', "annotations": []}', "nested too deeply"),
    ('{"images": [], "annotations": [], "x": "\udcff', "not readable JSON"),
    ("[1, 2]", "not a COCO annotation file")])
def test_an_unreadable_coco_file_gives_one_sentence(tmp_path, text, says):
    path = tmp_path / "bad_val.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match=says) as info:
        open_reader(path, "coco-instances", images=tmp_path / "images")
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_many_refused_annotations_share_validation_chunks(settings, tmp_path, monkeypatch):
    """5,000 annotations of unknown images were validated 64 at a time (~200 items/s):
    items refused before anything is opened now share a chunk."""
    path = write_instances(tmp_path / "coco", extra_anns=[
        {"id": 100 + i, "image_id": 1000 + i, "category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]]} for i in range(5000)])
    chunks = []
    write = _BatchWriter.write
    monkeypatch.setattr(_BatchWriter, "write", lambda self, facts, *a: (chunks.append(len(facts)), write(self, facts, *a)))
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.reasons == {"unknown_image": 5000} and r.images == 1
    assert len(chunks) <= 3 and sum(chunks) == 5001


def test_masks_are_confined_and_special_files_never_opened(settings, tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=5, classes=3)
    masks = sorted((root / "masks").iterdir())
    secret = tmp_path / "secret.png"
    masks[0].rename(secret)
    masks[0].symlink_to(secret)                     # a mask symlinked outside the dataset
    os.mkfifo(tmp_path / "fifo")
    masks[1].unlink()
    masks[1].symlink_to(tmp_path / "fifo")          # outside, and a FIFO: must not block
    os.mkfifo(root / "masks" / ".inside.fifo")
    masks[2].unlink()
    masks[2].symlink_to(root / "masks" / ".inside.fifo")  # inside, but a FIFO
    images = sorted((root / "images").iterdir())
    images[3].unlink()
    os.mkfifo(images[3])                            # an image that is a FIFO
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.images == 1 and r.reasons == {"mask_outside_root": 2, "special_file": 2}
    with pytest.raises(RefusedFile, match="not a regular file"):
        open_regular("/dev/zero")
    # a panoptic PNG named ../secret/x.png is not read
    pan = write_panoptic(tmp_path / "pan")
    (tmp_path / "pan/ann/secret").mkdir()
    png_dir = tmp_path / "pan/ann/panoptic_val2017"
    (png_dir / f"{0:012d}.png").rename(tmp_path / "pan/ann/secret/x.png")
    data = json.loads(pan.read_text())
    data["annotations"][0]["file_name"] = "../secret/x.png"
    pan.write_text(json.dumps(data))
    r = ingest_path(settings, pan, images=tmp_path / "pan/images", min_area=1, progress=False)
    assert r.images == 1 and r.reasons == {"mask_outside_root": 1}


def test_mask_pixel_limit_from_the_header_and_no_mask_per_value(tmp_path, monkeypatch):
    monkeypatch.setenv("KNNCLIP_INGEST__MAX_PIXELS", "1000000")
    settings = load_settings(home=tmp_path / "ws")
    root = write_sample_dataset(tmp_path / "s", images=3, classes=3)
    _lying_png(sorted((root / "masks").iterdir())[0], 20000, 20000)
    many = sorted((root / "masks").iterdir())[1]
    h, w = np.asarray(Image.open(many)).shape
    Image.fromarray(np.arange(h * w, dtype=np.uint16).reshape(h, w)).save(many)  # 12,288 distinct values
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.images == 1 and r.reasons == {"mask_too_large": 1, "too_many_labels": 1}
    rows, _ = _rows(settings, r.batch_id)
    assert any("400000000 pixels" in m and "decompression-bomb limit" in m for _, _, m in rows)  # past Pillow's guard
    # 3,000 values on a 128x96 mask: memory stays near one label map, not 3,000 masks (36 MB)
    labels = (np.arange(h * w) % 3000).astype(np.uint16).reshape(h, w)
    Image.fromarray(labels).save(many)
    (root / "masks" / sorted((root / "masks").iterdir())[0].name).unlink()
    reader = open_reader(root)
    tracemalloc.start()
    items = [it for it in reader if it.mask_path == many]
    facts_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(items[0].segments) == 3000 and facts_peak < 8_000_000


def test_label_map_rles_equal_per_value_masks():
    rng = np.random.default_rng(0)
    for t in range(60):
        h, w = rng.integers(1, 40, 2)
        labels = rng.integers(0, 1 + t % 7, (h, w)).astype([np.uint8, np.uint16, np.uint32, np.int32][t % 4])
        lm = LabelMap(labels)
        for v in lm.values() + [99]:
            assert lm.encode(v) == encode_mask(labels == v)
            assert np.array_equal(lm.region(v).mask(), labels == v)


def test_rle_of_another_size_is_quarantined_before_embedding(settings, tmp_path):
    from pycocotools import mask as mask_utils
    small = np.zeros((20, 25), np.uint8)
    small[2:8, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(small))
    path = write_instances(tmp_path / "coco", extra_anns=[
        {"id": 40, "image_id": 7, "category_id": 2, "iscrowd": 0, "segmentation": {"size": [20, 25], "counts": rle["counts"].decode()}},
        {"id": 41, "image_id": 7, "category_id": 2, "iscrowd": 0, "segmentation": {"size": [40, 50], "counts": [5, 5]}}])
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.images == 1 and r.segments == 3 and r.reasons == {"mask_size_mismatch": 1, "bad_segmentation": 1}
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        stored = s.exec(select(Segment)).all()
    assert stored and all(parse_counts(seg.mask_rle).sum() == 40 * 50 for seg in stored)


def test_duplicate_image_ids_are_caught_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setenv("KNNCLIP_INGEST__CHUNK_IMAGES", "2")
    settings = load_settings(home=tmp_path / "ws")
    pan = write_panoptic(tmp_path / "pan")
    data = json.loads(pan.read_text())
    for i in range(2, 6):  # more images, so that the duplicate lands chunks after the first
        data["images"].append(dict(data["images"][1], id=i, file_name=f"{i:012d}.jpg"))
        data["annotations"].append(dict(data["annotations"][1], image_id=i, file_name=f"{i:012d}.png"))
        Image.fromarray(rgb(30, 30, 10 + i)).save(tmp_path / f"pan/images/{i:012d}.jpg")
        (tmp_path / f"pan/ann/panoptic_val2017/{i:012d}.png").write_bytes(
            (tmp_path / "pan/ann/panoptic_val2017/000000000001.png").read_bytes())
    data["annotations"].append(dict(data["annotations"][0]))  # image 0 again, last
    pan.write_text(json.dumps(data))
    r = ingest_path(settings, pan, images=tmp_path / "pan/images", min_area=1, progress=False)
    assert r.images == 6 and r.reasons == {"duplicate_id": 1}
    rows, _ = _rows(settings, r.batch_id)
    assert rows[0][0] == f"{0:012d}.jpg" and "(id 0)" in rows[0][2]


def test_an_annotation_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "instances_val.json")
    with pytest.raises(InputError, match="not a regular file"):
        open_reader(tmp_path / "instances_val.json")


def test_image_bombs_are_quarantined_with_pillows_guard_left_on(settings, tmp_path):
    """Images and masks whose headers claim more pixels than Pillow's own bomb limit are
    quarantined (never decoded), the rest of the batch is ingested, and ingest leaves
    PIL.Image.MAX_IMAGE_PIXELS as it was (it used to switch Pillow's guard off process-wide)."""
    import knnclip_core.validation.facts  # noqa: F401  (imported for its former side effect)

    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3  # Pillow's default, untouched
    root = write_sample_dataset(tmp_path / "s", images=4, classes=3)
    images, masks = sorted((root / "images").iterdir()), sorted((root / "masks").iterdir())
    _lying_png(images[0], 30000, 30000)
    _lying_png(masks[1], 30000, 30000)
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.images == 2 and r.reasons == {"too_many_pixels": 1, "mask_too_large": 1}
    rows, status = _rows(settings, r.batch_id)
    assert status == "done"
    by_reason = {reason: message for _, reason, message in rows}
    assert images[0].name in by_reason["too_many_pixels"] and "900000000 pixels" in by_reason["too_many_pixels"]
    assert masks[1].name in by_reason["mask_too_large"] and "900000000 pixels" in by_reason["mask_too_large"]
    assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3


def test_two_masks_with_one_name_quarantine_the_image_not_guess(settings, tmp_path):
    """a.png and a.tif in the masks folder: the image is quarantined naming both (it used to
    take whichever was listed last), and the other images go through."""
    import shutil

    root = write_sample_dataset(tmp_path / "s", images=3, classes=3)
    first = sorted((root / "masks").iterdir())[0]
    twin = first.with_suffix(".tif")
    shutil.copy(first, twin)
    r = ingest_path(settings, root, min_area=1, progress=False)
    assert r.images == 2 and r.reasons == {"ambiguous_mask": 1}
    rows, status = _rows(settings, r.batch_id)
    assert status == "done" and len(rows) == 1
    assert first.name in rows[0][2] and twin.name in rows[0][2] and "several masks" in rows[0][2]


def test_an_annotation_id_repeated_in_another_image_is_quarantined(settings, tmp_path):
    """COCO annotation ids are unique over the file: the repeat (here in a second image) is
    quarantined naming both entries, and the first keeps its segment."""
    path = write_instances(tmp_path / "coco", extra_images=[{"id": 8, "file_name": "b.jpg", "height": 40, "width": 50}],
                           extra_anns=[{"id": 2, "image_id": 8, "category_id": 1, "segmentation": [[0, 0, 9, 0, 9, 9]]},
                                       {"id": 5, "image_id": 8, "category_id": 2, "segmentation": [[20, 20, 29, 20, 29, 29]]}])
    Image.fromarray(rgb(40, 50, 5)).save(tmp_path / "coco/images/b.jpg")
    r = ingest_path(settings, path, images=tmp_path / "coco/images", min_area=1, progress=False)
    assert r.images == 2 and r.segments == 3 + 1 and r.reasons == {"duplicate_id": 1}
    rows, _ = _rows(settings, r.batch_id)
    assert rows[0][0] == "instances_val2017.json annotations[4]"
    assert "repeats annotation id 2 of annotations[1]" in rows[0][2]
