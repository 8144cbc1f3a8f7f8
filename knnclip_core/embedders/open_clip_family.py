"""`open_clip` family: dense image features from one forward, pooled inside each mask, then
the tower's head into the text-embedding space (see clip_dense for the path of each tower
kind). QuickGELU towers are built wherever the weights need them: the pretrained tag's config
says so, or the backbone spec's `quick_gelu` for a local checkpoint.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .backbones import BackboneSpec
from .base import Embedder, ResizePreparer, format_id
from .clip_dense import DENSE_PATHS, config_tower_kind, dense, head, resize_attnpool_positions, tower_kind
from .text import TextEncoderMixin
from .weights import looks_like_path, resolve_open_clip

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


def model_config(spec: BackboneSpec) -> dict:
    """The open_clip model config of `spec.architecture`; ValueError when open_clip has none."""
    import open_clip

    register_model_configs()
    cfg = open_clip.get_model_config(spec.architecture)
    if cfg is None:
        raise ValueError(f"backbone {spec.name!r}: unknown open_clip architecture {spec.architecture!r}")
    return cfg


def tag_config(spec: BackboneSpec) -> dict:
    """open_clip's pretrained config of `spec.weights` when it is a tag ({} for a path, `random`)."""
    import open_clip

    if spec.weights in ("random", "none") or looks_like_path(spec.weights):
        return {}
    return open_clip.get_pretrained_cfg(spec.architecture, spec.weights) or {}


def uses_quick_gelu(spec: BackboneSpec, cfg: Optional[dict] = None) -> bool:
    """Whether `spec`'s towers need QuickGELU: the spec's `quick_gelu` when set, else the
    pretrained tag's config, else the model config. ValueError when the spec contradicts them."""
    cfg = cfg if cfg is not None else model_config(spec)
    tag = tag_config(spec)
    implied = bool(tag.get("quick_gelu", False) or cfg.get("quick_gelu", False))
    if spec.quick_gelu is None:
        return implied
    if (tag or implied) and implied != spec.quick_gelu:
        source = f"the open_clip tag {spec.weights!r}" if tag else f"the model config {spec.architecture!r}"
        raise ValueError(f"backbone {spec.name!r}: quick_gelu: {str(spec.quick_gelu).lower()} contradicts {source}, "
                         f"which says {str(implied).lower()}")
    return spec.quick_gelu


def create_clip_model(spec: BackboneSpec, checkpoint: Optional[str], device: str = "cpu"):
    """The open_clip model of `spec` with the weights file `checkpoint` (None: random init).

    QuickGELU as `uses_quick_gelu` says; a ResNet tower at another input size than its config's
    is built and loaded at that size, then its attention-pool positions are resized."""
    import open_clip

    cfg = model_config(spec)
    kind = config_tower_kind(cfg)
    size = spec.input_size
    force_size = size if size and kind != "resnet" else None
    model = open_clip.create_model(spec.architecture, pretrained=checkpoint, device=device,
                                   force_quick_gelu=uses_quick_gelu(spec, cfg), force_image_size=force_size)
    if kind == "resnet" and size:
        resize_attnpool_positions(model.visual, int(size))
    return model


def id_extra(spec: BackboneSpec, cfg: dict, hw: tuple[int, int]) -> str:
    """The open_clip part of an embedder id: input size, QuickGELU, dense path."""
    act = ",quickgelu" if uses_quick_gelu(spec, cfg) else ""
    return f"input={hw[0]}x{hw[1]}{act},dense={DENSE_PATHS[config_tower_kind(cfg)]}"


class OpenClipEmbedder(TextEncoderMixin, Embedder):
    """An open_clip model; image side gives mask vectors, text side class embeddings."""

    family = "open_clip"
    has_text = True

    def __init__(self, spec: BackboneSpec, device: str = "cpu", cache_dir: str | Path | None = None):
        super().__init__(spec, device)
        import open_clip
        import torch

        weights = resolve_open_clip(spec)
        cfg = model_config(spec)
        self.model = create_clip_model(spec, weights.path).eval().to(device)
        self.visual = self.model.visual
        self.tokenizer = open_clip.get_tokenizer(spec.architecture)
        tag = tag_config(spec)  # a path passed to open_clip loses the tag's preprocessing
        pcfg = getattr(self.visual, "preprocess_cfg", {}) or {}
        self.mean = tag.get("mean") or pcfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
        self.std = tag.get("std") or pcfg.get("std", open_clip.OPENAI_DATASET_STD)
        size = spec.input_size or getattr(self.visual, "image_size", 224)
        self.input_hw = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.kind = tower_kind(self.visual, self.name)
        with torch.inference_mode():
            probe = self.forward(torch.zeros(1, 3, *self.input_hw, device=device))
            self.dim = int(head(self.kind, self.visual, probe[0, 0, :1].float()).shape[1])
        self.prep = ResizePreparer(self.input_hw, self.mean, self.std, (int(probe.shape[1]), int(probe.shape[2])))
        self.id = self.make_id(weights.label, self.dim, extra=id_extra(spec, cfg, self.input_hw))
        self.init_text_cache(cache_dir)

    @staticmethod
    def id_for(spec: BackboneSpec) -> str:
        """The id of this spec's embedder, from the model config and the weights file's
        checksum, without building the model."""
        weights = resolve_open_clip(spec)
        cfg = model_config(spec)
        size = spec.input_size or cfg["vision_cfg"].get("image_size", 224)
        hw = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        return format_id(OpenClipEmbedder.family, spec, weights.label, int(cfg["embed_dim"]), id_extra(spec, cfg, hw))

    def forward(self, x):
        """(B, 3, H, W) -> (B, gh, gw, D') features to pool (before the tower's head)."""
        return dense(self.kind, self.visual, x)

    def head(self, pooled):
        """(n, D') pooled features (tensor on the device) -> (n, D) embeddings, not normalised."""
        return head(self.kind, self.visual, pooled)

    def encode_image_pooled(self, x):
        """The model's own pooled image embedding (for the throughput baseline)."""
        return self.model.encode_image(x)

    def _encode_text_tokens(self, texts: list[str]):
        tokens = self.tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())
