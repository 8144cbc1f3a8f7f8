"""Image reading for embedding: libspng PNG decode equals Pillow's, size checks, JPEG
draft decoding, and the uint8-on-the-host / normalise-on-the-device split."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from knnclip_core.embedders import get_embedder
from knnclip_core.embedders.image_io import open_rgb, read_rgb


def save(tmp_path, name, image: Image.Image) -> str:
    path = tmp_path / name
    image.save(path)
    return str(path)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_png_decodes_like_pillow(tmp_path, mode):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)).convert(mode)
    path = save(tmp_path, f"x_{mode}.png", image)
    got = read_rgb(path)
    assert got.shape == (21, 34, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.asarray(Image.open(path).convert("RGB")))


def test_size_mismatch_and_truncated_png_are_reported(tmp_path):
    path = save(tmp_path, "a.png", Image.new("RGB", (40, 30)))
    with pytest.raises(ValueError, match="image is 40x30, catalog says 41x30"):
        with open_rgb(path, (30, 41)):
            pass
    data = open(path, "rb").read()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match="decode"):
        read_rgb(str(tmp_path / "cut.png"))


def test_jpeg_draft_decodes_smaller_but_covers_the_input(tmp_path):
    rng = np.random.default_rng(1)
    path = save(tmp_path, "big.jpg", Image.fromarray(rng.integers(0, 256, (480, 960, 3), dtype=np.uint8)))
    with open_rgb(path, (480, 960), draft_hw=(100, 100)) as im:
        assert im.mode == "RGB" and im.size == (240, 120)  # 1/4 scale still covers 100 x 100
    with open_rgb(path, (480, 960)) as im:
        assert im.size == (960, 480)


def test_uint8_pixels_normalised_on_the_device_equal_float_preprocessing():
    emb = get_embedder("tiny-vit-random", device="cpu")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    pixels = emb.prep.pixels(image)
    assert pixels.dtype == np.uint8 and pixels.shape == (3, *emb.input_hw)
    resized = pixels.transpose(1, 2, 0).astype(np.float32) / 255.0
    oracle = ((resized - np.float32(emb.mean)) / np.float32(emb.std)).transpose(2, 0, 1)
    np.testing.assert_allclose(emb.model_input(pixels[None])[0].numpy(), oracle, atol=1e-5)
    np.testing.assert_allclose(emb.preprocess(image), oracle, atol=1e-5)
    assert emb.model_input(torch.from_numpy(pixels[None])).dtype == torch.float32
