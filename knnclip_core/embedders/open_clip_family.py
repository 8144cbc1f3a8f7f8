"""`open_clip` family: dense image features in the text-embedding space from one forward.

- ViT towers: patch tokens through `ln_post` and `proj` (the same head as the pooled token).
- timm towers (ConvNeXt, ...): the trunk's last feature map, every location through the
  trunk's head (norm) and the adapter head (projection), as FC-CLIP does.
- ModifiedResNet towers: the last feature map, every location through the attention
  pool's value and output projections (MaskCLIP's dense trick).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .backbones import BackboneSpec
from .base import Embedder, ResizePreparer, format_id
from .text import TextEncoderMixin
from .weights import resolve_open_clip

logger = logging.getLogger(__name__)

MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"
_registered = False


def register_model_configs() -> None:
    """Make knnclip's small open_clip model configs (tiny test models) known to open_clip."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIGS)
        _registered = True


class OpenClipEmbedder(TextEncoderMixin, Embedder):
    """An open_clip model; image side gives dense features, text side class embeddings."""

    family = "open_clip"
    has_text = True

    def __init__(self, spec: BackboneSpec, device: str = "cpu", cache_dir: str | Path | None = None):
        super().__init__(spec, device)
        import open_clip
        import torch

        register_model_configs()
        weights = resolve_open_clip(spec)
        kwargs = {"force_image_size": spec.input_size} if spec.input_size else {}
        try:
            model = open_clip.create_model(spec.architecture, pretrained=weights.path, device="cpu", **kwargs)
        except RuntimeError as exc:
            if "not found" in str(exc) and "config" in str(exc).lower():
                raise ValueError(f"backbone {spec.name!r}: unknown open_clip architecture {spec.architecture!r}") from None
            raise
        self.model = model.eval().to(device)
        self.visual = self.model.visual
        self.tokenizer = open_clip.get_tokenizer(spec.architecture)
        pcfg = getattr(self.visual, "preprocess_cfg", {}) or {}
        self.mean = pcfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
        self.std = pcfg.get("std", open_clip.OPENAI_DATASET_STD)
        size = spec.input_size or getattr(self.visual, "image_size", 224)
        self.input_hw = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.kind = self._tower_kind()
        with torch.inference_mode():
            probe = self.forward(torch.zeros(1, 3, *self.input_hw, device=device))
        self.prep = ResizePreparer(self.input_hw, self.mean, self.std, (int(probe.shape[1]), int(probe.shape[2])))
        self.dim = int(probe.shape[3])
        self.id = self.make_id(weights.label, self.dim, extra=f"input={self.input_hw[0]}x{self.input_hw[1]}")
        self.init_text_cache(cache_dir)

    @staticmethod
    def id_for(spec: BackboneSpec) -> str:
        """The id of this spec's embedder, from the model config and the weights file's
        checksum, without building the model."""
        import open_clip

        register_model_configs()
        weights = resolve_open_clip(spec)
        cfg = open_clip.get_model_config(spec.architecture)
        if cfg is None:
            raise ValueError(f"backbone {spec.name!r}: unknown open_clip architecture {spec.architecture!r}")
        size = spec.input_size or cfg["vision_cfg"].get("image_size", 224)
        h, w = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        return format_id(OpenClipEmbedder.family, spec, weights.label, int(cfg["embed_dim"]), f"input={h}x{w}")

    def _tower_kind(self) -> str:
        v = self.visual
        if hasattr(v, "transformer") and hasattr(v, "ln_post"):
            if getattr(v, "attn_pool", None) is not None:
                raise ValueError(f"backbone {self.name!r}: attention-pooled ViT towers give no dense tokens")
            return "vit"
        if hasattr(v, "trunk") and hasattr(v, "head"):
            return "timm"
        if hasattr(v, "attnpool") and hasattr(v, "layer4"):
            return "resnet"
        raise ValueError(f"backbone {self.name!r}: unsupported open_clip image tower {type(v).__name__}")

    def forward(self, x):
        v = self.visual
        if self.kind == "vit":
            t = v.transformer(v._embeds(x))
            t = v.ln_post(t)
            gh, gw = x.shape[2] // v.patch_size[0], x.shape[3] // v.patch_size[1]
            t = t[:, t.shape[1] - gh * gw:]  # drop the class token
            if v.proj is not None:
                t = t @ v.proj
            return t.reshape(x.shape[0], gh, gw, -1)
        if self.kind == "timm":
            f = v.trunk.forward_features(x)
            if f.ndim != 4:
                raise ValueError(f"backbone {self.name!r}: timm trunk gives {f.ndim}-d features, need a feature map")
            b, c, gh, gw = f.shape
            loc = f.permute(0, 2, 3, 1).reshape(b * gh * gw, c, 1, 1)
            loc = v.head(v.trunk.forward_head(loc))
            return loc.reshape(b, gh, gw, -1)
        # ModifiedResNet: stem + layers, then value/output projections per location
        f = v.stem(x)
        for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
            f = layer(f)
        b, c, gh, gw = f.shape
        loc = f.permute(0, 2, 3, 1)
        loc = v.attnpool.c_proj(v.attnpool.v_proj(loc))
        return loc

    def encode_image_pooled(self, x):
        """The model's own pooled image embedding (for the throughput baseline)."""
        return self.model.encode_image(x)

    def _encode_text_tokens(self, texts: list[str]):
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())
