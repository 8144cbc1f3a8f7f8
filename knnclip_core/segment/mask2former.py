"""`mask2former` proposals: a Mask2Former checkpoint from a local folder, through `transformers`.

The folder is one written by `Mask2FormerForUniversalSegmentation.save_pretrained` (config.json
with `model_type: mask2former` and the weights); it is given as `checkpoint=` or
$KNNCLIP_MASK2FORMER_DIR. Nothing is ever downloaded (`local_files_only=True`). The queries'
masks become class-agnostic proposals the way Mask2Former forms its panoptic output: each query
scored by its class confidence (1 - no-object probability) times its mean mask probability, the
queries under `score_threshold` dropped, and each pixel given to the query with the highest
score x mask probability, so the proposals tile the image; the kNN memory names them.
"""
from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import KnnclipError
from .image_size import check_image, downscaled, upscale_labels

logger = logging.getLogger(__name__)

ENV = "KNNCLIP_MASK2FORMER_DIR"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _folder(checkpoint: Optional[str]) -> Path:
    """The checkpoint folder, checked to be a local Mask2Former one; KnnclipError (one sentence) otherwise."""
    where = checkpoint or os.environ.get(ENV)
    fix = (f"set {ENV} or proposal_options.checkpoint to a folder written by "
           "Mask2FormerForUniversalSegmentation.save_pretrained")
    if not where:
        raise KnnclipError(f"the 'mask2former' proposals need a local checkpoint folder: {fix}.")
    folder = Path(where).expanduser()
    if not folder.is_dir():
        raise KnnclipError(f"the 'mask2former' checkpoint folder {folder} does not exist: {fix}.")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type != "mask2former":
        raise KnnclipError(f"{folder} is not a Mask2Former checkpoint (its config.json does not say "
                           f"model_type 'mask2former'): {fix}.")
    return folder


@lru_cache(maxsize=2)
def _load(folder: str):
    """(model in eval mode, mean, std) of a local Mask2Former folder, loaded once."""
    try:
        from transformers import Mask2FormerForUniversalSegmentation
    except ImportError:
        raise KnnclipError("the 'mask2former' proposals need the transformers package, which is not installed "
                           "(pip install 'knnclip[learned]').") from None
    try:
        model = Mask2FormerForUniversalSegmentation.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        why = " ".join(str(exc).split()).rstrip(".")
        raise KnnclipError(f"the Mask2Former checkpoint in {folder} could not be loaded ({why}): write it again "
                           "with save_pretrained.") from None
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    pre = Path(folder) / "preprocessor_config.json"
    if pre.is_file():
        cfg = json.loads(pre.read_text())
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    logger.info("loaded Mask2Former proposals from %s", folder)
    return model.eval(), np.asarray(mean, np.float32), np.asarray(std, np.float32)


def mask2former_proposals(image: np.ndarray, masks=None, checkpoint: Optional[str] = None, max_side: int = 512,
                          score_threshold: float = 0.0, min_area: int = 16, **_) -> list[np.ndarray]:
    """Mask2Former query masks as bool proposals of the image's size (see the module docstring);
    the network runs on the image downscaled to `max_side` and padded to a multiple of 32."""
    import torch

    h, w = check_image(image)
    model, mean, std = _load(str(_folder(checkpoint)))
    small = downscaled(image, max_side)
    sh, sw = small.shape[:2]
    ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
    x = np.zeros((ph, pw, 3), np.float32)
    x[:sh, :sw] = (small.astype(np.float32) / 255.0 - mean) / std
    with torch.inference_mode():
        out = model(pixel_values=torch.from_numpy(x).permute(2, 0, 1)[None])
        cls = out.class_queries_logits[0].float().softmax(-1)  # (Q, C + 1), last = no object
        prob = torch.nn.functional.interpolate(out.masks_queries_logits.float(), size=(ph, pw), mode="bilinear",
                                               align_corners=False)[0, :, :sh, :sw].sigmoid()  # (Q, sh, sw)
        binary = prob > 0.5
        mask_score = (prob * binary).flatten(1).sum(1) / binary.flatten(1).sum(1).clamp(min=1)
        score = (1.0 - cls[:, -1]) * mask_score
        keep = score >= score_threshold
        if not keep.any():
            keep = score >= score.max()
        labels = (score[keep, None, None] * prob[keep]).argmax(0).numpy()
    labels = upscale_labels(np.unique(labels, return_inverse=True)[1].reshape(sh, sw), (h, w))
    out_masks = [labels == r for r in range(int(labels.max()) + 1)]
    return [m for m in out_masks if m.sum() >= min_area] or [np.ones((h, w), dtype=bool)]
