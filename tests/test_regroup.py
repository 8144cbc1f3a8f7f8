"""Proposals that follow objects: agreeing fragments joined and asked again, proposal-like memory
regions, SLIC at reduced resolution (constructed cases, hand-checked)."""
import numpy as np
import pytest

from knnclip_core.segment import FlatMemory, Segmenter, SegmentParams, propose
from knnclip_core.segment.proposals import upscale_labels
from knnclip_core.segment.regroup import agreeing_groups, proposal_like_regions, smoothed_classes


def strips(n=4, h=8, w=16):
    """n vertical strips of an (h, w) image."""
    out = []
    for i in range(n):
        m = np.zeros((h, w), bool)
        m[:, i * w // n:(i + 1) * w // n] = True
        out.append(m)
    return out


def test_touching_fragments_of_one_class_are_grouped_and_others_stay_apart():
    masks = strips()
    assert agreeing_groups(masks, [0, 0, 1, 0]) == [[0, 1], [2], [3]]   # strip 3 is of class 0 but apart
    assert agreeing_groups(masks, [0, 0, 1, 0], scope="class") == [[0, 1, 3], [2]]
    assert agreeing_groups(masks, [-1, -1, 2, 2]) == [[0], [1], [2, 3]]  # unknown never joins


def test_smoothing_follows_the_neighbours():
    masks = strips(3)
    P = np.array([[0.9, 0.1], [0.45, 0.55], [0.9, 0.1]])
    assert smoothed_classes(masks, P, 0.0).tolist() == [0, 1, 0]
    assert smoothed_classes(masks, P, 1.0).tolist() == [0, 0, 0]  # 0.45 + 0.9 > 0.55 + 0.1


def test_proposal_like_regions_take_the_majority_class_and_drop_mixed_ones():
    rng = np.random.default_rng(0)
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = [220, 30, 30]
    img[:, 16:] = [30, 30, 220]
    img = np.clip(img.astype(int) + rng.integers(0, 8, img.shape), 0, 255).astype(np.uint8)
    left = np.zeros((32, 32), bool)
    left[:, :16] = True
    regions = proposal_like_regions(img, [("red", left), ("blue", ~left)], "grid", rows=2, cols=2)
    assert [n for n, _ in regions] == ["red", "blue", "red", "blue"]
    assert all(not (m & ~left).any() or not (m & left).any() for _, m in regions)
    mixed = proposal_like_regions(img, [("red", left), ("blue", ~left)], "grid", rows=1, cols=1)
    assert mixed == []  # half red, half blue: below the purity


def test_upscaled_labels_keep_the_layout():
    small = np.array([[0, 1], [2, 3]])
    big = upscale_labels(small, (4, 6))
    assert big.shape == (4, 6) and (big[:2, :3] == 0).all() and (big[2:, 3:] == 3).all()


def test_slic_at_reduced_resolution_gives_full_size_masks():
    img = np.zeros((120, 200, 3), np.uint8)
    img[:, :100] = [200, 40, 40]
    img[:, 100:] = [40, 40, 200]
    masks = propose("slic", img, n_segments=40, max_side=50, min_area=1)
    assert all(m.shape == (120, 200) for m in masks)
    assert (np.sum(masks, axis=0) == 1).all()
    for m in masks:  # every region stays on one side of the colour edge (up to a scaled pixel)
        assert min((m[:, :96]).sum(), (m[:, 104:]).sum()) == 0


@pytest.fixture(scope="module")
def classic():
    from knnclip_core.embedders import get_embedder

    return get_embedder("classic", device="cpu")


def test_fragments_retrieval_agrees_on_are_one_segment_asked_again(classic):
    """A 1 x 4 grid over a red | blue image: two fragments each side, joined into the two halves
    (the very masks the memory holds), so the second answer is a perfect match."""
    rng = np.random.default_rng(1)
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, :16] = [210, 40, 40]
    img[:, 16:] = [40, 40, 210]
    img = np.clip(img.astype(int) + rng.integers(0, 10, img.shape), 0, 255).astype(np.uint8)
    left = np.zeros((24, 32), bool)
    left[:, :16] = True
    mem = FlatMemory(classic.embed_masks(img, [left, ~left]), [0, 1], ["red", "blue"])
    mem.embedder_id = classic.id
    params = SegmentParams(k=1, confidence_threshold=0.0, proposals="grid", proposal_options={"rows": 1, "cols": 4},
                          merge_rounds=0)
    res = Segmenter(classic, mem, params).segment(img)
    assert len(res.segments) == 4  # no rounds: the fragments as they came
    params.merge_rounds = 2
    res = Segmenter(classic, mem, params).segment(img)
    assert [s.label for s in res.segments] == [0, 1]
    assert (res.segments[0].mask == left).all()
    assert res.segments[0].neighbours[0][1] == pytest.approx(1.0, abs=1e-5)  # the memory's own row
    res = Segmenter(classic, mem, params).segment(img, masks=strips(4, 24, 32))
    assert len(res.segments) == 4  # the caller's masks are never joined
