"""Dense CLIP features per image-tower kind, split at the point where masks are pooled.

`dense(kind, visual, x)` gives the (B, gh, gw, D') map that masks pool; `head(kind, visual,
pooled)` turns (n, D') pooled means into (n, D) vectors of the text-embedding space:

- `vit` (MaskCLIP's value path): the last block's attention is replaced by its value
  projection and output projection (each token attends to itself only); the block's residual
  and MLP follow, as MaskCLIP's released code does. `ln_post` comes before pooling, or after
  it when the model's config sets `final_ln_after_pool`; `proj` after pooling (linear).
- `timm` (FC-CLIP, ConvNeXt): the trunk's last feature map is pooled; the trunk's head (norm)
  and the projection head run on the pooled vector, so a full-image mask gives `encode_image`.
- `resnet` (MaskCLIP): the last feature map is pooled; the attention pool's value and output
  projections (affine, so pooling before or after them is the same) run on the pooled vector.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# tower kind -> name of its dense path (part of the embedder id)
DENSE_PATHS = {"vit": "maskclip", "timm": "pool-head", "resnet": "maskclip"}


def config_tower_kind(cfg: dict) -> str:
    """Tower kind of an open_clip model config: 'timm', 'resnet' (layers given per stage) or 'vit'."""
    vision = cfg.get("vision_cfg", {})
    if vision.get("timm_model_name"):
        return "timm"
    if isinstance(vision.get("layers"), (list, tuple)):
        return "resnet"
    return "vit"


def tower_kind(visual, name: str) -> str:
    """Kind of a built open_clip image tower; ValueError naming backbone `name` when unsupported."""
    if hasattr(visual, "transformer") and hasattr(visual, "ln_post"):
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError(f"backbone {name!r}: attention-pooled ViT towers give no dense tokens")
        return "vit"
    if hasattr(visual, "trunk") and hasattr(visual, "head"):
        return "timm"
    if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
        return "resnet"
    raise ValueError(f"backbone {name!r}: unsupported open_clip image tower {type(visual).__name__}")


def _value_path(block, x):
    """The last block with its attention replaced by the value path: x + out_proj(v(ln_1(x))),
    then the block's MLP residual. x is (B, L, C) batch-first."""
    import torch.nn.functional as F
    from torch import nn

    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention):
        raise ValueError(f"ViT blocks with {type(attn).__name__} attention have no value path here")
    c = attn.embed_dim
    if attn._qkv_same_embed_dim:
        w_v = attn.in_proj_weight[2 * c:]
    else:
        w_v = attn.v_proj_weight
    b_v = attn.in_proj_bias[2 * c:] if attn.in_proj_bias is not None else None
    v = attn.out_proj(F.linear(block.ln_1(x), w_v, b_v))
    x = x + block.ls_1(v)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def vit_value_tokens(visual, x):
    """(B, 3, H, W) -> (B, gh, gw, C) patch tokens of MaskCLIP's value path, before `ln_post`."""
    t = visual._embeds(x)
    tr = visual.transformer
    blocks = list(tr.resblocks)
    batch_first = getattr(tr, "batch_first", True)
    if not batch_first:
        t = t.transpose(0, 1)
    for block in blocks[:-1]:
        t = block(t)
    if not batch_first:
        t = t.transpose(0, 1)
    t = _value_path(blocks[-1], t)
    gh, gw = x.shape[2] // visual.patch_size[0], x.shape[3] // visual.patch_size[1]
    return t[:, t.shape[1] - gh * gw:].reshape(x.shape[0], gh, gw, -1)  # class token dropped


def dense(kind: str, visual, x):
    """(B, 3, H, W) model input -> (B, gh, gw, D') features that masks pool."""
    if kind == "vit":
        t = vit_value_tokens(visual, x)
        return t if getattr(visual, "final_ln_after_pool", False) else visual.ln_post(t)
    if kind == "timm":
        f = visual.trunk.forward_features(x)
        if f.ndim != 4:
            raise ValueError(f"timm trunk gives {f.ndim}-d features, need a feature map")
        return f.permute(0, 2, 3, 1)
    f = visual.stem(x)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        f = layer(f)
    return f.permute(0, 2, 3, 1)


def head(kind: str, visual, pooled):
    """(n, D') pooled means (tensor on the model's device) -> (n, D) embeddings (not normalised)."""
    pooled = pooled.to(next(visual.parameters()).dtype)
    if kind == "vit":
        if getattr(visual, "final_ln_after_pool", False):
            pooled = visual.ln_post(pooled)
        return pooled @ visual.proj if visual.proj is not None else pooled
    if kind == "timm":
        n, c = pooled.shape
        return visual.head(visual.trunk.forward_head(pooled.reshape(n, c, 1, 1)))
    return visual.attnpool.c_proj(visual.attnpool.v_proj(pooled))


def resize_attnpool_positions(visual, image_size: int) -> None:
    """Resize a ModifiedResNet's attention-pool positional embedding (bicubic, class position
    kept) for `image_size` inputs, in place; no-op when it already fits."""
    import torch
    import torch.nn.functional as F

    pool = visual.attnpool
    pos = pool.positional_embedding.data
    old = int(round((pos.shape[0] - 1) ** 0.5))
    new = image_size // 32
    if new == old:
        return
    assert old * old == pos.shape[0] - 1 and new > 0, (pos.shape, image_size)
    grid = pos[1:].float().reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    resized = torch.cat([pos[:1].float(), grid.permute(0, 2, 3, 1).reshape(new * new, -1)]).to(pos.dtype)
    pool.positional_embedding = torch.nn.Parameter(resized, requires_grad=False)
    visual.image_size = (image_size, image_size)
    logger.info("attention-pool positions resized from %dx%d to %dx%d", old, old, new, new)
