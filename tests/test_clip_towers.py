"""CLIP dense features per tower kind, on tiny random towers, each checked against a
reference computed another way: ConvNeXt's full-image mask is `encode_image`; the ViT path is
the last block run with each token attending only to itself; QuickGELU where the weights need
it; a ResNet loads at another input size."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from knnclip_core.embedders import get_embedder, get_spec
from knnclip_core.embedders.open_clip_family import OpenClipEmbedder, create_clip_model, uses_quick_gelu


def images(n=3, h=80, w=112):
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (h + 8 * i, w, 3), dtype=np.uint8) for i in range(n)]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_convnext_full_image_mask_equals_encode_image():
    """FC-CLIP's order: pool the trunk's feature map, then the head; a mask over the whole
    image is then the model's own global-average-pooled embedding."""
    emb = get_embedder("tiny-convnext-random", device="cpu")
    for image in images():
        got = emb.embed_masks(image, [np.ones(image.shape[:2], bool)])
        x = torch.from_numpy(emb.preprocess(image))[None]
        with torch.inference_mode():
            want = emb.model.encode_image(x).numpy()
        np.testing.assert_allclose(got, unit(want), atol=1e-5)


def block_masks(grid, patch):
    """Masks made of whole patches (so each cell is in or out) and their cell sets."""
    gh, gw = grid
    cells = [np.arange(gh * gw), np.array([0, 1, gw, gw + 1]), np.arange(gw, 3 * gw)]
    masks = []
    for c in cells:
        m = np.zeros((gh * patch, gw * patch), bool)
        for k in c:
            i, j = divmod(int(k), gw)
            m[i * patch:(i + 1) * patch, j * patch:(j + 1) * patch] = True
        masks.append(m)
    return masks, cells


def self_attention_tokens(visual, x):
    """Reference: the ViT run as open_clip runs it, except that the last block's attention
    may only look at the token itself (a diagonal mask), which leaves out_proj(value) of
    each token; residual and MLP as the block does them. Returns (B, cells, C) pre-ln_post."""
    t = visual._embeds(x)
    blocks = list(visual.transformer.resblocks)
    for block in blocks[:-1]:
        t = block(t)
    n = t.shape[1]
    only_self = torch.full((n, n), float("-inf"))
    only_self.fill_diagonal_(0.0)
    return blocks[-1](t, attn_mask=only_self)[:, 1:]


@pytest.mark.parametrize("arch", ["knnclip-tiny-vit", "knnclip-tiny-vit-lnpool"])
def test_vit_dense_path_is_maskclip_value_path(arch):
    spec = dataclasses.replace(get_spec("tiny-vit-random"), name=arch, architecture=arch)
    emb = OpenClipEmbedder(spec)
    v = emb.visual
    assert v.final_ln_after_pool == arch.endswith("lnpool")
    masks, cells = block_masks(emb.grid_hw(64, 64), v.patch_size[0])
    image = images(1, 64, 64)[0]
    got = emb.embed_masks(image, masks)
    x = torch.from_numpy(emb.preprocess(image))[None]
    with torch.inference_mode():
        tokens = self_attention_tokens(v, x)[0]
        for row, c in zip(got, cells):
            if v.final_ln_after_pool:
                want = v.ln_post(tokens[c].mean(0)) @ v.proj  # ln_post after pooling
            else:
                want = (v.ln_post(tokens[c]) @ v.proj).mean(0)
            np.testing.assert_allclose(row, unit(want.numpy()), atol=1e-5)


def activations(model) -> set[str]:
    return {type(m).__name__ for m in model.modules() if "GELU" in type(m).__name__}


@pytest.mark.parametrize("name", ["vit-b-32-openai", "rn50-openai"])
def test_openai_specs_build_quick_gelu_towers_from_a_tag_or_a_path(name):
    spec = get_spec(name)
    for s in (spec, dataclasses.replace(spec, weights="/models/openai.pt")):  # a local copy of the weights
        assert uses_quick_gelu(s)
        with torch.device("meta"):  # the full-size skeleton, no memory, no weights
            model = create_clip_model(s, None, device="meta")
        assert activations(model) == {"QuickGELU"}
    assert not uses_quick_gelu(get_spec("vit-b-16-laion2b"))
    assert not uses_quick_gelu(dataclasses.replace(spec, quick_gelu=None, weights="/models/openai.pt"))


def test_an_openai_tag_without_the_field_still_gets_quick_gelu_and_a_contradiction_is_refused():
    spec = dataclasses.replace(get_spec("vit-b-32-openai"), quick_gelu=None)
    assert uses_quick_gelu(spec)  # open_clip's pretrained config of the tag says so
    with pytest.raises(ValueError, match="contradicts the open_clip tag 'openai'"):
        uses_quick_gelu(dataclasses.replace(spec, quick_gelu=False))


def test_local_checkpoint_declared_quick_gelu_builds_and_changes_features(tmp_path):
    base = get_embedder("tiny-vit-random", device="cpu")
    torch.save(base.model.state_dict(), tmp_path / "tiny.pt")
    spec = dataclasses.replace(get_spec("tiny-vit-random"), weights=str(tmp_path / "tiny.pt"))
    gelu = OpenClipEmbedder(spec)
    quick = OpenClipEmbedder(dataclasses.replace(spec, quick_gelu=True))
    assert activations(gelu.model) == {"GELU"} and activations(quick.model) == {"QuickGELU"}
    assert "quickgelu" in quick.id and "quickgelu" not in gelu.id
    assert quick.id == OpenClipEmbedder.id_for(dataclasses.replace(spec, quick_gelu=True))
    image = images(1)[0]
    mask = [np.ones(image.shape[:2], bool)]
    assert not np.allclose(gelu.embed_masks(image, mask), quick.embed_masks(image, mask), atol=1e-3)


def test_resnet_at_twice_its_native_size_loads_and_embeds(tmp_path):
    native = get_embedder("tiny-rn-random", device="cpu")
    torch.save(native.model.state_dict(), tmp_path / "rn.pt")
    pos = native.visual.attnpool.positional_embedding.detach().clone()  # (2*2 + 1, C) at 64 px
    spec = dataclasses.replace(get_spec("tiny-rn-random"), weights=str(tmp_path / "rn.pt"))
    same = OpenClipEmbedder(spec)
    torch.testing.assert_close(same.visual.attnpool.positional_embedding, pos)  # native size: unchanged
    big = OpenClipEmbedder(dataclasses.replace(spec, input_size=128))
    resized = big.visual.attnpool.positional_embedding
    assert big.input_hw == (128, 128) and big.grid_hw(200, 300) == (4, 4)
    assert resized.shape == (4 * 4 + 1, pos.shape[1])
    torch.testing.assert_close(resized[0], pos[0])  # the class position is kept
    image = images(1)[0]
    out = big.embed_masks(image, [np.ones(image.shape[:2], bool), np.eye(*image.shape[:2], dtype=bool)])
    assert out.shape == (2, big.dim) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():  # the tower's own attention pool runs at the new size too
        assert big.model.encode_image(torch.zeros(1, 3, 128, 128)).shape == (1, big.dim)
