"""Each reader on tiny generated fixtures, checked against what was written."""
import numpy as np
import pytest

from knnclip_core.errors import InputError
from knnclip_core.readers import detect_format, open_reader
from knnclip_core.sample_data import class_names, write_sample_dataset
from PIL import Image

from fixture_datasets import write_ade, write_instances, write_panoptic


def test_semantic_png_one_segment_per_value(tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=5, classes=4, seed=1)
    reader = open_reader(root)
    assert reader.format == "semantic-png" and len(reader) == 5
    for item in reader:
        labels = np.asarray(Image.open(item.mask_path))
        assert sorted(int(s.label) for s in item.segments) == np.unique(labels).tolist()
        for s in item.segments:
            assert np.array_equal(s.mask, labels == int(s.label))
            assert s.class_name == class_names(4)[int(s.label)]


def test_sample_classes_are_a_superset():
    assert class_names(7)[:5] == class_names(5)


def test_ade20k_ignores_zero_and_keeps_synonyms(tmp_path):
    write_ade(tmp_path)
    reader = open_reader(tmp_path)
    assert reader.format == "ade20k"
    items = list(reader)
    assert len(items) == 3
    names = {s.class_name for it in items for s in it.segments}
    assert names == {"wall", "building|edifice", "car|auto"}
    assert all(s.label != "0" for it in items for s in it.segments)
    assert {s.class_name: s.is_thing for it in items for s in it.segments}["car|auto"] is True


def test_coco_panoptic_one_segment_per_entry(tmp_path):
    path = write_panoptic(tmp_path)
    reader = open_reader(path, images=tmp_path / "images")
    assert detect_format(path) == "coco-panoptic"
    items = list(reader)
    assert [len(it.segments) for it in items] == [3, 3]
    seg = items[0].segments
    assert [s.mask.sum() for s in seg] == [100, 100, 300]
    assert [s.is_thing for s in seg] == [True, True, False]
    assert seg[2].class_name == "tree merged"


def test_coco_instances_polygon_rle_and_crowd(tmp_path):
    path = write_instances(tmp_path)
    assert detect_format(path) == "coco-instances"
    (item,) = list(open_reader(path, images=tmp_path / "images"))
    assert item.skipped_crowd == 1
    assert [s.class_name for s in item.segments] == ["dog", "cat", "dog"]
    # compressed and uncompressed RLE of the same 10x10 square decode identically
    assert item.segments[1].mask.sum() == 100
    assert np.array_equal(item.segments[1].mask, item.segments[2].mask)
    assert item.segments[0].mask[:10, :10].all() and item.segments[0].mask.sum() >= 100


def test_unreadable_inputs_say_why(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_reader(tmp_path / "nope")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        open_reader(bad)
    with pytest.raises(InputError, match="unknown format"):
        open_reader(tmp_path, "pascal")


def test_a_classes_file_that_is_not_utf8_or_too_large_is_one_sentence(tmp_path, monkeypatch):
    from knnclip_core.readers import semantic_png

    bad = tmp_path / "classes.txt"
    bad.write_bytes("road\nsky\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"classes.txt line 3 is not UTF-8 text"):
        semantic_png.read_classes_file(bad)
    monkeypatch.setattr(semantic_png, "MAX_CLASSES_FILE_BYTES", 8)
    bad.write_text("road\nsky\nbuilding\n")
    with pytest.raises(InputError, match="larger than 8 bytes"):
        semantic_png.read_classes_file(bad)
    monkeypatch.undo()
    assert [c.name for c in semantic_png.read_classes_file(bad)] == ["road", "sky", "building"]
