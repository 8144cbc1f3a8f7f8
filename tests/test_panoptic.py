"""Panoptic output as FC-CLIP forms it: painting by score, score and overlap thresholds, thing
fragments of generated proposals merged into one instance (constructed cases, hand-checked)."""
import numpy as np
import pytest

from knnclip_core.segment import FlatMemory, Segmenter, SegmentParams
from knnclip_core.segment.segmenter import Segment
from test_segment import blocks_image

H, W = 20, 20
CLASSES = ["car", "road", "person"]


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def seg(mask, label, score):
    scores = np.zeros(len(CLASSES), np.float32)
    if label >= 0:
        scores[label] = score
    return Segment(mask=mask, label=label, score=score if label >= 0 else 0.0, scores=scores, confidence=score,
                   fused=label >= 0, neighbours=[])


@pytest.fixture(scope="module")
def classic():
    from knnclip_core.embedders import get_embedder

    return get_embedder("classic", device="cpu")


def segmenter(classic, **panoptic):
    mem = FlatMemory(np.eye(classic.dim, dtype=np.float32)[:3], [0, 1, 2], CLASSES)
    params = SegmentParams()
    for k, v in panoptic.items():
        setattr(params.panoptic, k, v)
    return Segmenter(classic, mem, params, thing_classes=["car", "person"])


def test_higher_score_is_painted_on_top_not_the_smaller_mask(classic):
    big, small = box(0, 20, 0, 20), box(5, 10, 5, 10)
    s = segmenter(classic)
    label_map, pan, info = s._compose((H, W), [seg(big, 1, 0.9), seg(small, 0, 0.4)], CLASSES)
    assert (label_map == 1).all(), "the road (0.9) covers the lower-scored car (0.4) where they overlap"
    assert [p["class"] for p in info] == ["road"] and (pan == info[0]["id"]).all()


def test_nested_and_mostly_hidden_masks_are_dropped(classic):
    big = box(10, 20, 0, 20)
    nested = box(12, 16, 5, 10)                    # wholly inside the better road: 0 % visible
    hidden = box(0, 10, 15, 20)                    # 50 px, 40 under the person below: 20 % visible
    person = box(0, 8, 10, 20)
    s = segmenter(classic)
    segs = [seg(big, 1, 0.95), seg(nested, 0, 0.5), seg(hidden, 0, 0.6), seg(person, 2, 0.97)]
    label_map, pan, info = s._compose((H, W), segs, CLASSES)
    assert sorted(p["class"] for p in info) == ["person", "road"]
    car_visible = hidden & ~person
    assert (pan[car_visible] == 0).all(), "pixels of a dropped proposal are void in the panoptic map"
    assert (label_map[car_visible] == 0).all(), "the semantic map keeps them"
    # with the overlap threshold off, the partly hidden car stays; the nested one has no pixel at all
    s = segmenter(classic, overlap_threshold=0.0)
    assert sorted(p["class"] for p in s._compose((H, W), segs, CLASSES)[2]) == ["car", "person", "road"]


def test_score_threshold_keeps_weak_proposals_out_of_the_panoptic_map(classic):
    left, right = box(0, 20, 0, 10), box(0, 20, 10, 20)
    s = segmenter(classic, score_threshold=0.5)
    label_map, pan, info = s._compose((H, W), [seg(left, 1, 0.3), seg(right, 2, 0.8)], CLASSES)
    assert [p["class"] for p in info] == ["person"]
    assert (pan[left] == 0).all() and (label_map[left] == 1).all()


@pytest.fixture(scope="module")
def block_memory(classic):
    img = blocks_image()
    h, w = img.shape[:2]
    m = [np.zeros((h, w), bool) for _ in range(3)]
    m[0][:, : w // 2] = True
    m[1][: h // 2, w // 2:] = True
    m[2][h // 2:, w // 2:] = True
    xb = np.concatenate([classic.embed_masks(img, m) for _ in range(2)])
    return FlatMemory(xb, np.array([0, 1, 2] * 2), ["red car", "green grass", "blue sky"])


def test_split_car_from_generated_proposals_is_one_instance(classic, block_memory):
    """A 2 x 2 grid cuts the red car in two cells: one car, not two; caller masks stay instances.
    (merge_rounds 0: the cells reach the panoptic step unjoined, so this checks its own merge.)"""
    seg_ = Segmenter(classic, block_memory, SegmentParams(k=2, confidence_threshold=0.0, proposals="grid",
                                                          proposal_options={"rows": 2, "cols": 2}, merge_rounds=0),
                     thing_classes=["red car"])
    res = seg_.segment(blocks_image())
    assert [s.label for s in res.segments] == [0, 1, 0, 2]
    cars = [p for p in res.panoptic if p["class"] == "red car"]
    assert len(cars) == 1 and cars[0]["segments"] == [0, 2] and cars[0]["area"] == 48 * 32
    assert (res.panoptic_map[:, :32] == cars[0]["id"]).all()
    res = seg_.segment(blocks_image(), masks=[s.mask for s in res.segments])  # the caller's masks
    assert len([p for p in res.panoptic if p["class"] == "red car"]) == 2
    seg_.params.panoptic.merge_things = False
    assert len([p for p in seg_.segment(blocks_image()).panoptic if p["class"] == "red car"]) == 2


def test_touching_fragments_merge_but_separate_cars_do_not(classic):
    s = segmenter(classic)
    a, b, c = box(0, 10, 0, 5), box(0, 10, 5, 9), box(0, 10, 14, 20)  # a|b touch; c stands apart
    road = box(10, 20, 0, 20)
    _, pan, info = s._compose((H, W), [seg(a, 0, 0.7), seg(b, 0, 0.8), seg(c, 0, 0.9), seg(road, 1, 0.9)],
                              CLASSES)
    cars = sorted((p["segments"] for p in info if p["class"] == "car"))
    assert cars == [[0, 1], [2]]
    assert len(np.unique(pan[a | b])) == 1 and pan[c][0] != pan[a][0]
