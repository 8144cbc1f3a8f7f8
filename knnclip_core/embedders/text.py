"""Text embeddings of class labels: an ensemble over prompt templates and the label's
synonyms (`coffee table|cocktail table`, see knnclip_core.classnames), cached on disk by
(embedder id, vocabulary) under the workspace cache folder."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..classnames import synonyms
from .pooling import l2_normalize

logger = logging.getLogger(__name__)

# A compact ensemble in the style of CLIP's ImageNet templates, for scene segments.
PROMPT_TEMPLATES = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
)


TEXT_BATCH = 256  # prompts per text-tower forward


def text_cache_key(embedder_id: str, class_names: list[str], templates=PROMPT_TEMPLATES) -> str:
    """sha256 hex over the embedder id, the templates and the ordered vocabulary."""
    blob = json.dumps([embedder_id, list(templates), list(class_names)], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class TextEncoderMixin:
    """`encode_text` for CLIP families; subclasses provide `_encode_text_tokens(texts)`."""

    templates = PROMPT_TEMPLATES

    def init_text_cache(self, cache_dir: Optional[str | Path]) -> None:
        self.text_cache_dir = Path(cache_dir) / "text" if cache_dir else None
        self._text_memo: dict[str, np.ndarray] = {}

    def encode_text(self, class_names: list[str]) -> np.ndarray:
        """(n, D) float32 L2-normalised, one row per class label: each synonym's embedding is
        the normalised mean of its normalised template embeddings (underscores read as
        spaces); the row is the normalised mean of its synonyms' embeddings. (FC-CLIP takes the
        max over synonyms' logits instead; one vector per class keeps a single text matrix.)
        Cached by (id, vocabulary)."""
        import torch

        key = text_cache_key(self.id, class_names, self.templates)
        if key in self._text_memo:
            return self._text_memo[key]
        path = self.text_cache_dir / f"{key}.npy" if self.text_cache_dir else None
        if path is not None and path.is_file():
            out = np.load(path)
        else:
            rows = []
            per_class = [[n.replace("_", " ").strip() for n in synonyms(name)] for name in class_names]
            texts = [t.format(n) for names in per_class for n in names for t in self.templates]
            with torch.inference_mode(), self.autocast():
                # every prompt of the vocabulary in a few large batches (one per class was
                # most of a release load on the CPU), then split back per class
                emb = torch.cat([self._encode_text_tokens(texts[i:i + TEXT_BATCH]).float()
                                 for i in range(0, len(texts), TEXT_BATCH)]) if texts else None
                start = 0
                for names in per_class:
                    count = len(names) * len(self.templates)
                    part = torch.nn.functional.normalize(emb[start:start + count], dim=-1)
                    start += count
                    per_name = part.reshape(len(names), len(self.templates), -1).mean(dim=1)
                    rows.append(torch.nn.functional.normalize(per_name, dim=-1).mean(dim=0).cpu().numpy())
            out = l2_normalize(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, out)
                tmp.replace(path)
        self._text_memo[key] = out
        return out
