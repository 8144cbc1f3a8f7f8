"""The `mask2former` proposal generator with a tiny randomly initialised model saved to a local folder."""
import json

import numpy as np
import pytest

from knnclip_core.errors import KnnclipError
from knnclip_core.segment import PROPOSALS, FlatMemory, Segmenter, SegmentParams, propose

NUM_QUERIES = 8


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A Mask2Former (tiny Swin backbone, 8 queries, random weights) written by save_pretrained."""
    import torch
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(0)
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    cfg = Mask2FormerConfig(backbone_config=backbone, use_pretrained_backbone=False, hidden_dim=32,
                            mask_feature_size=32, feature_size=32, num_queries=NUM_QUERIES, encoder_layers=1,
                            decoder_layers=2, num_attention_heads=2, encoder_feedforward_dim=64, dim_feedforward=64,
                            num_labels=5)
    folder = tmp_path_factory.mktemp("m2f")
    Mask2FormerForUniversalSegmentation(cfg).save_pretrained(folder)
    return folder


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape, max_side", [((70, 90), 512), ((150, 100), 64)])
def test_masks_tile_the_image_at_its_size(tiny_dir, monkeypatch, shape, max_side):
    """Bool masks of the image's own size (also when the network ran downscaled and padded),
    every pixel in exactly one mask, at most one mask per query; offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "mask2former" in PROPOSALS.names()
    masks = propose("mask2former", _image(*shape), checkpoint=str(tiny_dir), max_side=max_side, min_area=1)
    assert 1 <= len(masks) <= NUM_QUERIES
    assert all(m.shape == shape and m.dtype == bool and m.any() for m in masks)
    assert (np.sum(masks, axis=0) == 1).all()


def test_folder_from_the_environment_and_through_the_segmenter(tiny_dir, monkeypatch):
    """KNNCLIP_MASK2FORMER_DIR names the folder; Segmenter classifies exactly those proposals."""
    from knnclip_core.embedders import get_embedder

    monkeypatch.setenv("KNNCLIP_MASK2FORMER_DIR", str(tiny_dir))
    img = _image(64, 80, seed=1)
    expected = propose("mask2former", img)
    emb = get_embedder("classic", device="cpu")
    xb = emb.embed_masks(img, expected)
    memory = FlatMemory(xb, np.arange(len(expected)) % 2, ["cat", "dog"])
    seg = Segmenter(emb, memory, SegmentParams(proposals="mask2former", k=1, confidence_threshold=0.0,
                                               merge_rounds=0))
    res = seg.segment(img)
    assert res.label_map.shape == img.shape[:2]
    assert len(res.segments) == len(expected)
    for s in res.segments:  # the segments are the generator's proposals, each classified
        assert any(np.array_equal(m, s.mask) for m in expected) and s.label in (0, 1)


def test_missing_or_wrong_folder_is_one_sentence(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("KNNCLIP_MASK2FORMER_DIR", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(KnnclipError) as exc:
        propose("mask2former", _image(32, 32), checkpoint=str(missing))
    msg = str(exc.value)
    assert str(missing) in msg and "does not exist" in msg and "KNNCLIP_MASK2FORMER_DIR" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")
    with pytest.raises(KnnclipError, match="KNNCLIP_MASK2FORMER_DIR"):
        propose("mask2former", _image(32, 32))
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(KnnclipError, match=f"{other} is not a Mask2Former checkpoint"):
        propose("mask2former", _image(32, 32), checkpoint=str(other))
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(KnnclipError, match=f"checkpoint in {weightless} could not be loaded"):
        propose("mask2former", _image(32, 32), checkpoint=str(weightless))
