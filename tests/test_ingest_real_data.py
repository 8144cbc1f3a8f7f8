"""Exact counts on the real datasets in ../shared/data (skipped when absent)."""
import json

import pytest

from knnclip_core.ingest import ingest_path

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_coco_panoptic_train(settings, shared_data):
    path = shared_data / "coco128/panoptic_segmentation/annotations/panoptic_train2017.json"
    expected = sum(len(a["segments_info"]) for a in json.loads(path.read_text())["annotations"])
    r = ingest_path(settings, path, images=shared_data / "coco128/images/train2017", min_area=1, progress=False)
    assert r.images == 100 and r.segments == expected and r.quarantined == 0
    assert ingest_path(settings, path, images=shared_data / "coco128/images/train2017", min_area=1,
                       progress=False).new_segments == 0


def test_ade20k_validation(settings, shared_data):
    r = ingest_path(settings, shared_data / "ade20k/ADEChallengeData2016", split="validation", min_area=1, progress=False)
    assert (r.images, r.segments, r.classes) == (33, 331, 87)
    assert ingest_path(settings, shared_data / "ade20k", min_area=1, progress=False).new_segments == 0


def test_camvid_train(settings, shared_data):
    cam = shared_data / "camvid"
    kw = dict(images=cam / "train", masks=cam / "trainannot", classes=cam / "classes.txt", ignore=[11], min_area=1,
              progress=False)
    r = ingest_path(settings, cam, "semantic-png", **kw)
    assert (r.images, r.segments, r.classes) == (367, 3534, 11)
    assert ingest_path(settings, cam, "semantic-png", **kw).new_segments == 0
