"""Embedders with tiny random models: oracle pooling of dense features, batching,
ids, text, and the offline missing-weights message. The CLIP towers' dense paths are
checked against references in test_clip_towers.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from knnclip_core.embedders import FAMILIES, embedder_id_for, get_embedder, get_spec, list_backbones
from knnclip_core.embedders.backbones import UnknownBackboneError
from knnclip_core.errors import WeightsNotFoundError

TINY = ["tiny-vit-random", "tiny-convnext-random", "tiny-rn-random", "tiny-dinov2-random"]


def scene(seed=0, h=96, w=128, n=4):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    masks = [rng.random((h, w)) > 0.6 for _ in range(n - 1)]
    m = np.zeros((h, w), bool)
    m[10:40, 20:90] = True
    return image, masks + [m]


@pytest.mark.parametrize("name", TINY)
def test_pooled_equals_oracle_area_mean_of_dense_features(name):
    emb = get_embedder(name, device="cpu")
    image, masks = scene()
    out = emb.embed_masks(image, masks)
    assert out.shape == (len(masks), emb.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # oracle: dense map of the one forward, upsampled by nearest cell, mean inside each mask
    x = torch.from_numpy(emb.preprocess(image))[None]
    with torch.inference_mode():
        dense = emb.forward(x)[0].float().numpy()  # (gh, gw, D)
    gh, gw, d = dense.shape
    h, w = image.shape[:2]
    for i, m in enumerate(masks):
        # exact area weighting: each pixel splits over cells; use a fine oracle on a common grid
        fine = np.kron(m.astype(np.float64), np.ones((gh, gw)))  # (h*gh, w*gw): cells align exactly
        cell = fine.reshape(gh, h, gw, w).sum(axis=(1, 3))  # pixel-area of mask inside each cell
        ref = (cell[..., None] * dense).sum((0, 1)) / cell.sum()
        with torch.inference_mode():  # the tower's head after pooling (checked in test_clip_towers)
            ref = emb.head(torch.from_numpy(ref[None].astype(np.float32))).float().numpy()
        ref = emb.finalize(ref)[0]
        np.testing.assert_allclose(out[i], ref, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-vit-random", "classic"])
def test_batched_equals_one_by_one(name):
    emb = get_embedder(name, device="cpu")
    items = [scene(s, h=64 + 16 * (s % 2), w=96) for s in range(4)]
    batched = emb.embed_batch(items)
    for (image, masks), got in zip(items, batched):
        np.testing.assert_allclose(got, emb.embed_masks(image, masks), atol=1e-5)


def test_ids_are_deterministic_and_record_provenance():
    a = get_embedder("tiny-vit-random", device="cpu", cache=False)
    b = get_embedder("tiny-vit-random", device="cpu", cache=False)
    assert a.id == b.id == "open_clip|knnclip-tiny-vit|random-init|input=64x64,dense=maskclip|mask_mean|l2|dim=32"
    assert get_embedder("classic").id.startswith("classic|classic-v1|weights-free|")
    assert len({get_embedder(n, device="cpu").id for n in TINY + ["classic"]}) == len(TINY) + 1


@pytest.mark.parametrize("name", TINY + ["classic", "classic-v2"])
def test_id_without_building_the_model_equals_the_built_id(name):
    assert embedder_id_for(name) == get_embedder(name, device="cpu").id


def test_id_of_a_local_checkpoint_names_its_checksum(tmp_path):
    from knnclip_core.embedders.open_clip_family import OpenClipEmbedder

    random_model = get_embedder("tiny-vit-random", device="cpu")
    torch.save(random_model.model.state_dict(), tmp_path / "tiny.pt")
    spec = dataclasses.replace(get_spec("tiny-vit-random"), name="tiny-local", weights=str(tmp_path / "tiny.pt"))
    built = OpenClipEmbedder(spec)
    assert OpenClipEmbedder.id_for(spec) == built.id
    assert built.id.split("|")[2].startswith("tiny.pt+sha256:")


def test_text_ensemble_cached_by_vocabulary(settings, workspace):
    emb = get_embedder("tiny-vit-random", device="cpu", settings=settings)
    t = emb.encode_text(["road", "sky", "traffic_sign"])
    assert t.shape == (3, emb.dim) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert len(list((workspace.cache_dir / "text").glob("*.npy"))) == 1
    np.testing.assert_array_equal(emb.encode_text(["road", "sky", "traffic_sign"]), t)
    emb.encode_text(["road"])
    assert len(list((workspace.cache_dir / "text").glob("*.npy"))) == 2
    assert emb.logit_scale > 0 and emb.has_text
    assert not get_embedder("classic").has_text


def test_missing_weights_offline_is_one_clear_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty hub cache
    from knnclip_core.embedders.open_clip_family import OpenClipEmbedder

    spec = get_spec("vit-b-32-openai")
    with pytest.raises(WeightsNotFoundError) as err:
        OpenClipEmbedder(spec)
    msg = str(err.value)
    assert "'openai'" in msg and "weights: /path/to/checkpoint" in msg and "\n" not in msg
    local = dataclasses.replace(spec, weights=str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsNotFoundError, match="nope.pt"):
        OpenClipEmbedder(local)
    with pytest.raises(WeightsNotFoundError, match="lvd142m"):
        get_embedder("dinov2-vits14", device="cpu")
    with pytest.raises(WeightsNotFoundError, match="'openai'"):
        embedder_id_for("vit-b-32-openai")  # naming a memory needs the weights' checksum too


def test_backbones_are_data():
    names = [s.name for s in list_backbones()]
    assert names[0] == "classic" and "tiny-vit-random" in names
    assert {s.family for s in list_backbones()} <= set(FAMILIES.names())
    with pytest.raises(UnknownBackboneError, match="known: classic"):
        get_spec("nope")
    with pytest.raises(ValueError):
        FAMILIES.add("classic", lambda *a: None)


@pytest.mark.parametrize("name, workers", [("classic", 0), ("tiny-vit-random", 0), ("classic", 2),
                                           ("tiny-vit-random", 2)])
def test_loader_from_files_equals_in_memory_embedding(name, workers, tmp_path):
    """Files + RLE through the batched loader (host pooling for classic, device pooling for
    models; in process or in DataLoader worker processes, as on a GPU machine) give the
    vectors of the in-memory path; a missing file is reported alone."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from knnclip_core.embedders.loader import WorkItem, iter_embeddings

    emb = get_embedder(name, device="cpu")
    items, expected = [], {}
    for s in range(5):
        image, masks = scene(s, h=64 + 16 * (s % 2), w=96)
        Image.fromarray(image).save(tmp_path / f"{s}.png")
        rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() for m in masks]
        items.append(WorkItem(key=str(s), path=str(tmp_path / f"{s}.png"), height=image.shape[0],
                              width=image.shape[1], masks_rle=rles))
        expected[str(s)] = emb.embed_masks(image, masks)
    items.append(WorkItem(key="gone", path=str(tmp_path / "gone.png"), height=64, width=96, masks_rle=rles))
    out = {it.key: (v, err) for it, v, err in iter_embeddings(emb, items, batch_size=2, num_workers=workers)}
    assert out["gone"][0] is None and "missing file" in out["gone"][1]
    for key, want in expected.items():
        got, err = out[key]
        assert err is None
        np.testing.assert_allclose(got, want, atol=1e-5)
