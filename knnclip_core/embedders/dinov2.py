"""`dinov2` family (via timm): the paper's memory backbone. Patch tokens after the final
norm form the dense map; no text tower."""
from __future__ import annotations

import logging


from .backbones import BackboneSpec
from .base import Embedder, ResizePreparer, format_id
from .weights import resolve_timm

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_kwargs(spec: BackboneSpec) -> tuple[int, dict]:
    """(input side, timm create_model kwargs) of a DINOv2 spec: no head, the input size."""
    size = spec.input_size or 518
    return size, dict(spec.kwargs, num_classes=0, img_size=size)


class Dinov2Embedder(Embedder):
    """A timm DINOv2 ViT; weights from the hub cache, a local path, or `random` when named."""

    family = "dinov2"
    has_text = False

    def __init__(self, spec: BackboneSpec, device: str = "cpu"):
        super().__init__(spec, device)
        import timm
        import torch

        weights = resolve_timm(spec)
        size, kwargs = model_kwargs(spec)
        if weights.path is None:
            model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
        else:
            model = timm.create_model(spec.architecture, pretrained=True,
                                      pretrained_cfg_overlay={"file": weights.path}, **kwargs)
        self.model = model.eval().to(device)
        self.input_hw = (int(size), int(size))
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self.mean, self.std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        with torch.inference_mode():
            probe = self.forward(torch.zeros(1, 3, *self.input_hw, device=device))
        self.prep = ResizePreparer(self.input_hw, self.mean, self.std, (int(probe.shape[1]), int(probe.shape[2])))
        self.dim = int(probe.shape[3])
        self.id = self.make_id(weights.label, self.dim, extra=f"input={size}x{size}")

    @staticmethod
    def id_for(spec: BackboneSpec) -> str:
        """The id of this spec's embedder; the width comes from a model skeleton on the
        meta device (no weights read, no memory allocated)."""
        import timm
        import torch

        weights = resolve_timm(spec)
        size, kwargs = model_kwargs(spec)
        with torch.device("meta"):
            model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
        return format_id(Dinov2Embedder.family, spec, weights.label, int(model.num_features), f"input={size}x{size}")

    def forward(self, x):
        tokens = self.model.forward_features(x)  # (B, prefix + gh*gw, C), after the final norm
        gh, gw = self.model.patch_embed.dynamic_feat_size(x.shape[2:]) \
            if hasattr(self.model.patch_embed, "dynamic_feat_size") else self.model.patch_embed.grid_size
        tokens = tokens[:, self.model.num_prefix_tokens:]
        return tokens.reshape(x.shape[0], gh, gw, -1)
