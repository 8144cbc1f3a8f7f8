"""Proposals and the Segmenter's outputs (label map, panoptic, provenance) with real tiny models."""
import json

import numpy as np
import pytest

from knnclip_core.errors import EmbedderMismatchError, InputError
from knnclip_core.segment import PROPOSALS, FlatMemory, Segmenter, SegmentParams, propose
from knnclip_core.segment.proposals import merge_regions


def blocks_image(h=48, w=64):
    """Three flat colour blocks with a little noise: left red, right-top green, right-bottom blue."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = [200, 40, 40]
    img[: h // 2, w // 2:] = [40, 200, 40]
    img[h // 2:, w // 2:] = [40, 40, 200]
    return np.clip(img.astype(int) + rng.integers(0, 12, img.shape), 0, 255).astype(np.uint8)


def test_registry_names_and_duplicates():
    assert {"slic", "grid", "masks", "sam"} <= set(PROPOSALS.names())
    with pytest.raises(ValueError):
        PROPOSALS.add("grid", lambda image, **_: [])


def test_grid_covers_image_exactly_once():
    masks = propose("grid", blocks_image(), rows=3, cols=5)
    assert len(masks) == 15
    assert (np.sum(masks, axis=0) == 1).all()


def test_slic_merges_superpixels_into_colour_regions():
    img = blocks_image()
    masks = propose("slic", img, n_segments=60, min_area=1)
    assert (np.sum(masks, axis=0) == 1).all(), "regions partition the image"
    assert 3 <= len(masks) <= 6
    # every region is (almost) one colour block
    block = np.zeros(img.shape[:2], int)
    block[: img.shape[0] // 2, img.shape[1] // 2:] = 1
    block[img.shape[0] // 2:, img.shape[1] // 2:] = 2
    for m in masks:
        purity = np.bincount(block[m], minlength=3).max() / m.sum()
        assert purity > 0.9


def test_merge_regions_respects_max_regions():
    labels = np.arange(16).reshape(4, 4)
    feats = np.arange(16, dtype=float)[:, None] * 100  # all far apart
    out = merge_regions(labels, feats, threshold=1.0, max_regions=5)
    assert len(np.unique(out)) == 5


def test_masks_generator_checks_shape():
    img = blocks_image()
    with pytest.raises(InputError):
        propose("masks", img, masks=None)
    with pytest.raises(InputError):
        propose("masks", img, masks=[np.ones((3, 3), bool)])


@pytest.fixture(scope="module")
def classic():
    from knnclip_core.embedders import get_embedder

    return get_embedder("classic", device="cpu")


@pytest.fixture(scope="module")
def block_memory(classic):
    """Memory built from the three blocks of a few noisy copies of the image."""
    img = blocks_image()
    h, w = img.shape[:2]
    m = [np.zeros((h, w), bool) for _ in range(3)]
    m[0][:, : w // 2] = True
    m[1][: h // 2, w // 2:] = True
    m[2][h // 2:, w // 2:] = True
    xb = np.concatenate([classic.embed_masks(img, m) for _ in range(2)])
    return FlatMemory(xb, np.array([0, 1, 2] * 2), ["red thing", "green grass", "blue sky"]), m


def test_segmenter_with_classic_backbone(classic, block_memory):
    memory, gt = block_memory
    seg = Segmenter(classic, memory, SegmentParams(k=2, confidence_threshold=0.5), thing_classes=["red thing"])
    res = seg.segment(blocks_image(), masks=gt)
    assert [s.label for s in res.segments] == [0, 1, 2]
    assert (res.label_map[:, :32] == 0).all() and (res.label_map[:24, 32:] == 1).all()
    assert {p["class"]: p["is_thing"] for p in res.panoptic} == {"red thing": True, "green grass": False,
                                                                 "blue sky": False}
    body = json.loads(json.dumps(res.to_json(memory.segment_ids)))
    assert body["segments"][0]["provenance"][0]["segment_id"] in ("0", "3")
    assert set(body["timings"]) >= {"proposals", "forward", "retrieval", "fusion"}
    # vocabulary restriction: only "blue sky" may answer
    res = seg.segment(blocks_image(), masks=gt, vocabulary=["Blue Sky"])
    assert res.classes == ["blue sky"]
    assert all(memory.class_ids[r] == 2 for s in res.segments for r, _ in s.neighbours)
    assert all(len(s.neighbours) == 2 for s in res.segments)


def test_non_clip_backbone_says_unknown_below_threshold(classic, block_memory):
    memory, gt = block_memory
    seg = Segmenter(classic, memory, SegmentParams(k=6, temperature=100.0, confidence="similarity",
                                                   confidence_threshold=0.9))
    res = seg.segment(blocks_image(), masks=gt)  # flat vote over 3 classes: confidence ~1/3
    assert all(s.label == -1 for s in res.segments)
    assert (res.label_map == -1).all() and res.panoptic == []


def test_stuff_merges_and_things_stay_instances(classic, block_memory):
    memory, gt = block_memory
    h, w = gt[0].shape
    left_top, left_bottom = gt[0].copy(), gt[0].copy()
    left_top[h // 2:] = False
    left_bottom[: h // 2] = False
    for things, expected in ((["red thing"], 2), ([], 1)):
        seg = Segmenter(classic, memory, SegmentParams(k=2), thing_classes=things)
        res = seg.segment(blocks_image(), masks=[left_top, left_bottom, gt[1], gt[2]])
        reds = [p for p in res.panoptic if p["class"] == "red thing"]
        assert len(reds) == expected
        ids = {int(v) for v in np.unique(res.panoptic_map[:, :w // 2])}
        assert ids == {p["id"] for p in reds}


def test_segmenter_refuses_other_embedder(classic):
    mem = FlatMemory(np.eye(classic.dim, dtype=np.float32)[:2], [0, 1], ["a", "b"])
    mem.embedder_id = "open_clip|other|x|mask_mean|l2|dim=38"
    with pytest.raises(EmbedderMismatchError):
        Segmenter(classic, mem)


def test_clip_memory_and_clip_base_share_one_forward():
    """base_model clip with no backbone: the memory backbone's own text tower; P_base comes from
    the query vectors themselves (one forward serves both roles)."""
    from knnclip_core.embedders import get_embedder
    from knnclip_core.segment import BaseModelSpec

    emb = get_embedder("tiny-vit-random", device="cpu")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    xb = rng.standard_normal((30, emb.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    mem = FlatMemory(xb, rng.integers(0, 2, 30), ["cat", "dog"])
    params = SegmentParams(proposals="grid", k=3, confidence_threshold=0.0, fusion_lambda=0.5,
                           base_model=BaseModelSpec(kind="clip"))
    seg = Segmenter(emb, mem, params)
    assert seg.base_model.id == f"clip|{emb.id}" and seg.base_model.embedder is emb
    res = seg.segment(img, extra_classes=["zebra"])
    assert res.classes == ["cat", "dog", "zebra"]
    xq = emb.embed_masks(img, [s.mask for s in res.segments])
    from knnclip_core.segment.fusion import clip_scores
    from knnclip_core.segment.retrieval import retrieve

    P_base = clip_scores(xq, emb.encode_text(res.classes), emb.logit_scale)
    P_ret = retrieve(mem, xq, 3, 0.1, res.classes).P
    np.testing.assert_allclose(np.stack([s.scores for s in res.segments]), 0.5 * P_ret + 0.5 * P_base, atol=1e-5)
    assert all(s.scores[2] > 0 for s in res.segments), "the extra class gets base-model scores"


def test_clip_memory_without_base_model_is_retrieval_only():
    """The roles are apart: a CLIP memory backbone with base model `none` gives no text scores."""
    from knnclip_core.embedders import get_embedder

    emb = get_embedder("tiny-vit-random", device="cpu")
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((10, emb.dim)).astype(np.float32)
    mem = FlatMemory(xb / np.linalg.norm(xb, axis=1, keepdims=True), rng.integers(0, 2, 10), ["cat", "dog"])
    seg = Segmenter(emb, mem, SegmentParams(proposals="grid", k=3))
    res = seg.segment(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), extra_classes=["zebra"])
    assert seg.base_model.id == "none" and res.classes == ["cat", "dog"]


def test_sam_refuses_clearly_without_package_or_checkpoint(tmp_path):
    from knnclip_core.errors import KnnclipError
    from knnclip_core.segment.proposals import sam_available

    if sam_available():
        pytest.skip("segment_anything and a checkpoint are present here")
    with pytest.raises(KnnclipError, match="sam"):
        propose("sam", blocks_image(), checkpoint=str(tmp_path / "missing.pth"))


def test_overlay_legend_swatches_and_names():
    from knnclip_core.segment.render import LEGEND_PAD, LEGEND_ROW, draw_legend, overlay_image, palette

    image = np.full((80, 160, 3), 128, np.uint8)
    label_map = np.full((80, 160), -1, np.int64)
    label_map[:, 100:130], label_map[:, 130:] = 2, 0  # classes 0 and 2 present, 1 absent
    classes = ["road", "sky", "tree"]
    plain = overlay_image(image, label_map, 3)
    out = np.asarray(draw_legend(plain, label_map, classes))
    assert out.shape == (80, 160, 3)
    cols = palette(3)
    centre = LEGEND_PAD + 5
    assert (out[centre, centre] == cols[0]).all()  # row 0: road
    assert (out[centre + LEGEND_ROW, centre] == cols[2]).all()  # row 1: tree (sky is absent)
    assert not (out[centre + 2 * LEGEND_ROW, centre] == cols[1]).all()
    name_box = out[LEGEND_PAD:LEGEND_PAD + 2 * LEGEND_ROW, 2 * LEGEND_PAD + 10:60]
    assert (name_box > 200).all(axis=-1).sum() > 20  # white text of the names
    assert (out[:, 100:] == np.asarray(plain)[:, 100:]).all()  # the rest of the overlay is untouched
    assert (np.asarray(draw_legend(plain, np.full((80, 160), -1), classes)) == np.asarray(plain)).all()  # none known


def test_eval_and_segment_default_to_production():
    from knnclip_core.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["eval", "somewhere"]).release == "production"
    assert parser.parse_args(["segment", "x.png"]).release == "production"
