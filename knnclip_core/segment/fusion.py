"""Fusion of retrieval and the base model's open-vocabulary scores, as in kNN-CLIP.

With base scores: P = lambda * P_ret + (1 - lambda) * P_base where the retrieval confidence
is >= T, else P = P_base (a distant neighbourhood never overrides the base model). Without
them (base model `none`): P = P_ret, and a segment whose confidence is below T is labelled
`UNKNOWN` (-1).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

UNKNOWN = -1


def clip_scores(xq: np.ndarray, text: np.ndarray, logit_scale: float) -> np.ndarray:
    """P_clip: softmax over classes of logit_scale * cos(xq, text).

    xq (nq, d) and text (C, d) L2-normalised; returns (nq, C) float32 rows summing to 1."""
    assert xq.ndim == 2 and text.ndim == 2 and xq.shape[1] == text.shape[1]
    logits = float(logit_scale) * (xq.astype(np.float32) @ text.astype(np.float32).T)
    logits -= logits.max(axis=1, keepdims=True) if logits.size else 0
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32) if e.size else e.astype(np.float32)


def fuse(P_ret: np.ndarray, confidence: np.ndarray, P_base: Optional[np.ndarray],
         fusion_lambda: float, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine the scores of nq segments over C classes.

    Returns (P (nq, C), labels (nq,) argmax of P or UNKNOWN, fused (nq,) bool: whether
    retrieval took part). Raises AssertionError on shape mismatch or lambda outside [0, 1]."""
    assert 0.0 <= fusion_lambda <= 1.0
    assert P_ret.ndim == 2 and confidence.shape == (P_ret.shape[0],)
    fused = confidence >= threshold
    if P_base is None:
        P = P_ret.astype(np.float32)
        labels = np.where(fused, P.argmax(axis=1) if P.shape[1] else UNKNOWN, UNKNOWN)
        return P, labels.astype(np.int64), fused
    assert P_base.shape == P_ret.shape
    P = np.where(fused[:, None], fusion_lambda * P_ret + (1.0 - fusion_lambda) * P_base, P_base)
    P = P.astype(np.float32)
    labels = P.argmax(axis=1) if P.shape[1] else np.full(len(P), UNKNOWN)
    return P, labels.astype(np.int64), fused
