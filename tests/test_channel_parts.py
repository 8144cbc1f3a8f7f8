"""Issue 24's classic fast paths against brute-force oracles: per-mask pooling without writing
the indicator channels (both counters), the radix luminance order, the table-driven Lab, the
host worker processes, and the embedder's vectors against those of the code it replaced."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.classic_today import today_dense_channels, today_dense_channels_v2
from knnclip_core.embedders.channel_parts import LabelCells, MaskCells, mask_cells
from knnclip_core.embedders.classic_v2 import channel_parts_v2, stable_order
from knnclip_core.embedders.colour import rgb_to_lab
from knnclip_core.embedders.pooling import mask_weights


def _image(seed=0, h=45, w=61):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[: h // 3] = image[: h // 3] // 8 + 200  # a bright band: Lab bins and LBP codes vary
    return image


def _float64_pool(dense: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = weights.astype(np.float64)
    return (w @ dense.reshape(dense.shape[0], -1).T.astype(np.float64)) / np.maximum(w.sum(1, keepdims=True), 1e-12)


def _disjoint_masks(h, w, n=5, seed=1):
    labels = np.random.default_rng(seed).integers(0, n + 1, (h, w))  # label n: no mask
    return np.stack([labels == k for k in range(n)])


def test_pooled_with_a_label_map_equals_pooling_the_dense_channels():
    image = _image()
    h, w = image.shape[:2]
    masks = _disjoint_masks(h, w)
    masks[2] = False  # an empty mask gives a zero row, as pool() does
    weights = mask_weights(masks, (h, w))
    assert isinstance(mask_cells(weights), LabelCells)
    parts = channel_parts_v2(image)
    got = parts.pooled(weights)
    want = _float64_pool(parts.dense(), weights)
    assert got.dtype == np.float32 and got.shape == (5, 90)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not got[2].any()


def test_pooled_with_overlapping_fractional_masks_equals_pooling_the_dense_channels():
    image = _image(2, 40, 56)
    rng = np.random.default_rng(4)
    masks = rng.random((4, 80, 112)) > 0.5  # overlapping, on a grid of half the size: fractional weights
    weights = mask_weights(masks, (40, 56))
    assert isinstance(mask_cells(weights), MaskCells)
    parts = channel_parts_v2(image)
    np.testing.assert_allclose(parts.pooled(weights), _float64_pool(parts.dense(), weights), rtol=1e-5, atol=1e-5)


def test_label_map_refuses_overlap_and_fractions_and_keeps_uncovered_cells_out():
    disjoint = mask_weights(_disjoint_masks(6, 7, n=3), (6, 7))
    cells = LabelCells.of(disjoint)
    want = np.where(disjoint.any(0), disjoint.argmax(0), 3)
    np.testing.assert_array_equal(cells.labels, want)
    overlap = disjoint.copy()
    overlap[1, :] = 1.0
    assert LabelCells.of(overlap) is None
    assert LabelCells.of(disjoint * 0.5) is None
    assert LabelCells.of(np.zeros((0, 42), np.float32)) is None


def test_stable_order_is_numpys_stable_argsort():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0, 50, 3000), rng.integers(-3, 4, 3000),  # many ties
                             [0.0, -0.0, 0.0, -0.0, 1e-40, -1e-40, 3e38, -3e38]]).astype(np.float32)
    rng.shuffle(values)
    for v in (values, values.reshape(8, -1), np.full(17, -0.0, np.float32)):
        np.testing.assert_array_equal(stable_order(v), np.argsort(v, axis=None, kind="stable"))


def test_rgb_to_lab_is_skimage_bit_for_bit():
    from skimage.color import rgb2lab

    rng = np.random.default_rng(6)
    ramp = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)  # every grey level
    colours = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)  # 262k colours of the 2^24
    for image in (rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), ramp, np.zeros((3, 4, 3), np.uint8), colours):
        lab = rgb_to_lab(image)
        np.testing.assert_array_equal(lab, rgb2lab(image).astype(np.float32))
        assert all(lab[..., c].flags.c_contiguous for c in range(3))
    with pytest.raises(ValueError, match="uint8"):
        rgb_to_lab(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("name,today", [("classic", today_dense_channels), ("classic-v2", today_dense_channels_v2)])
def test_classic_vectors_equal_those_of_the_replaced_dense_path(name, today):
    from knnclip_core.embedders import get_embedder
    from knnclip_core.embedders.pooling import pool

    emb = get_embedder(name, device="cpu")
    image = _image(7, 64, 96)
    masks = list(_disjoint_masks(64, 96, n=4, seed=8)) + [np.random.default_rng(9).random((64, 96)) > 0.7]
    got = emb.embed_batch([(image, masks)])[0]
    x = today(image)
    want = emb.finalize(pool(mask_weights(np.stack(masks), (64, 96)), x.reshape(x.shape[0], -1).T, normalize=False))
    assert got.shape == want.shape == (5, emb.dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_host_workers_keep_order_and_report_bad_files_alone(tmp_path):
    from PIL import Image
    from pycocotools import mask as mask_utils

    from knnclip_core.embedders import get_embedder
    from knnclip_core.embedders.host_workers import iter_host_pooled
    from knnclip_core.embedders.loader import WorkItem

    emb = get_embedder("classic-v2", device="cpu")
    items = []
    for s in range(11):  # three chunks per worker and a partial one
        image = _image(s, 32 + 8 * (s % 3), 48)
        masks = _disjoint_masks(*image.shape[:2], n=3, seed=s)
        Image.fromarray(image).save(tmp_path / f"{s}.png")
        rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() for m in masks]
        items.append(WorkItem(str(s), str(tmp_path / f"{s}.png"), image.shape[0], image.shape[1], rles))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    items.insert(3, WorkItem("gone", str(tmp_path / "gone.png"), 32, 48, items[0].masks_rle))
    items.insert(7, WorkItem("bad", str(tmp_path / "bad.png"), 32, 48, items[0].masks_rle))
    serial = list(iter_host_pooled(emb.prep, items, 0))
    parallel = list(iter_host_pooled(emb.prep, items, 2))
    assert [i for i, _, _ in parallel] == list(range(len(items)))
    for (i, a, ea), (_, b, eb) in zip(serial, parallel):
        if items[i].key == "gone":
            assert a is None and b is None and "missing file" in ea and "missing file" in eb
        elif items[i].key == "bad":
            assert a is None and b is None and "not a readable image" in ea and ea == eb
        else:
            assert ea is None and eb is None and a.shape == (3, 90)
            np.testing.assert_array_equal(a, b)
