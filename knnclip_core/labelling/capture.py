"""A bounded store of captured answers: what the worker doubted, with the image, for labelling.

One capture per answer that has doubtful segments: a folder `<store>/<id>/` holding
`image.png` (the pixels as segmented) and `record.json` (release, source, classes, and per
segment its mask as COCO RLE, class, score, confidence, the neighbours' segment ids, and
why it was captured: `unknown`, `low_confidence`, `disagreement`, or from curation
`label_conflict` / `near_duplicate`). Ids sort by creation time, so the oldest go first
when the store is over its quota. Writes go to a hidden temporary folder renamed into
place: a reader never sees half a capture. Nothing here ever fails a request: errors
are logged and the answer goes out.
"""
from __future__ import annotations

import io
import json
import logging
import random
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..readers.regions import encode_mask

logger = logging.getLogger(__name__)

RECORD_FILE, IMAGE_FILE = "record.json", "image.png"
REASONS = ("unknown", "low_confidence", "disagreement", "label_conflict", "near_duplicate")
RECORD_FORMAT = 1
FALLBACK_BELOW = 0.6  # an answer that does not say its T (a result built outside Segmenter)


@dataclass
class CaptureParams:
    """What to capture: below `confidence_below`, unknown, disagreements; `sample_rate` of answers."""

    confidence_below: Optional[float] = None  # None: the T each answer was decided with
    sample_rate: float = 1.0
    quota_mb: float = 500.0


def doubtful_segments(result, confidence_below: float) -> list[tuple[int, list[str]]]:
    """(segment index, reasons) of the segments of a SegmentationResult worth a label:
    unknown, retrieval confidence below `confidence_below`, or base model and memory
    naming different classes."""
    out = []
    for i, s in enumerate(result.segments):
        if not s.mask.any():
            continue
        reasons = []
        if s.label < 0:
            reasons.append("unknown")
        elif s.confidence < confidence_below:
            reasons.append("low_confidence")
        rl, bl = getattr(s, "retrieval_label", -1), getattr(s, "base_label", -1)
        if rl >= 0 and bl >= 0 and rl != bl:
            reasons.append("disagreement")
        if reasons:
            out.append((i, reasons))
    return out


def segment_entry(result, i: int, reasons: Sequence[str], segment_ids: Optional[Sequence[str]], top: int = 5) -> dict:
    """The record of segment `i` of `result`: mask (COCO RLE), proposed class, scores, neighbours."""
    s = result.segments[i]
    counts, area, bbox = encode_mask(s.mask)
    order = np.argsort(-s.scores)[:top] if len(s.scores) else []
    proposed = int(s.label) if s.label >= 0 else (int(order[0]) if len(order) else -1)
    return {"index": i, "reasons": list(reasons), "mask_rle": counts, "area": area, "bbox": list(bbox),
            "class": result.classes[s.label] if s.label >= 0 else "unknown",
            "proposed_class": result.classes[proposed] if proposed >= 0 else None,
            "score": round(float(s.score), 6), "confidence": round(float(s.confidence), 6), "fused": bool(s.fused),
            "scores": {result.classes[j]: round(float(s.scores[j]), 6) for j in order},
            "neighbours": [{"row": int(r), "similarity": round(float(d), 6),
                            "segment_id": str(segment_ids[r]) if segment_ids is not None and r < len(segment_ids) else None}
                           for r, d in s.neighbours]}


class CaptureStore:
    """Captures under `root`, at most `quota_mb` MB (oldest dropped first); thread-safe."""

    def __init__(self, root: str | Path, params: Optional[CaptureParams] = None, seed: Optional[int] = None):
        self.root = Path(root)
        self.params = params or CaptureParams()
        assert 0.0 <= self.params.sample_rate <= 1.0, "sample_rate must lie in [0, 1]"
        self.quota_bytes = int(self.params.quota_mb * 1024 * 1024)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        for d in self.ids():
            self._sizes[d] = sum(f.stat().st_size for f in (self.root / d).iterdir() if f.is_file())
        self.dropped = 0

    def ids(self) -> list[str]:
        """Capture ids, oldest first."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def bytes_used(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def read(self, capture_id: str) -> dict:
        """The record of one capture (with `image` set to its image path)."""
        folder = self.root / capture_id
        rec = json.loads((folder / RECORD_FILE).read_text())
        rec["image_path"] = str(folder / rec.get("image", IMAGE_FILE))
        return rec

    def offer(self, image: np.ndarray, result, release: dict, source: str, *, name: Optional[str] = None,
              segment_ids: Optional[Sequence[str]] = None, scale: float = 1.0) -> Optional[str]:
        """Record the doubtful segments of one answer, when it has some and the sample takes it.
        Returns the capture id, or None. Never raises (a failure is logged)."""
        try:
            below = self.params.confidence_below
            if below is None:
                below = result.threshold if getattr(result, "threshold", None) is not None else FALLBACK_BELOW
            picked = doubtful_segments(result, below)
            if not picked:
                return None
            with self._lock:
                if self._rng.random() >= self.params.sample_rate:
                    return None
            record = {"release": release, "source": source, "name": name, "scale": scale,
                      "classes": list(result.classes), "height": int(image.shape[0]), "width": int(image.shape[1]),
                      "segments": [segment_entry(result, i, r, segment_ids) for i, r in picked]}
            return self.add(image, record)
        except Exception:  # the answer matters more than its capture
            logger.warning("capture failed; the answer is not recorded", exc_info=True)
            return None

    def add(self, image: np.ndarray, record: dict) -> Optional[str]:
        """Write one capture (an RGB image and its record); drops the oldest over the quota.
        Returns its id, or None when it alone is larger than the quota."""
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        cid = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        record = {"format": RECORD_FORMAT, "id": cid, "created": time.time(), "image": IMAGE_FILE, **record}
        body = json.dumps(record, separators=(",", ":")).encode()
        size = len(body) + buf.tell()
        if size > self.quota_bytes:
            logger.warning("capture of %d bytes is over the whole quota (%d bytes): not stored", size, self.quota_bytes)
            return None
        tmp = self.root / f".tmp-{cid}"
        tmp.mkdir()
        (tmp / IMAGE_FILE).write_bytes(buf.getvalue())
        (tmp / RECORD_FILE).write_bytes(body)
        tmp.rename(self.root / cid)
        with self._lock:
            self._sizes[cid] = size
            self._evict()
        return cid

    def _evict(self) -> None:
        """Drop the oldest captures until the store is under its quota (lock held)."""
        total = sum(self._sizes.values())
        for cid in sorted(self._sizes):
            if total <= self.quota_bytes:
                break
            total -= self._sizes.pop(cid)
            shutil.rmtree(self.root / cid, ignore_errors=True)
            self.dropped += 1

    def remove(self, capture_ids: Sequence[str]) -> None:
        """Delete captures (e.g. once exported and answered)."""
        with self._lock:
            for cid in capture_ids:
                self._sizes.pop(cid, None)
                shutil.rmtree(self.root / cid, ignore_errors=True)


def capture_dir(settings) -> Path:
    """The capture store's folder of `settings` (capture.dir, else <workspace>/captures)."""
    return Path(settings.capture.dir).expanduser() if settings.capture.dir else Path(settings.home).expanduser().resolve() / "captures"


def store_from_settings(settings, force: bool = False) -> Optional[CaptureStore]:
    """The CaptureStore the settings ask for; None while capture is off (and not `force`d)."""
    c = settings.capture
    if not (c.enabled or force):
        return None
    below = c.confidence_below if c.confidence_below is not None else settings.worker.confidence_threshold
    # still None: each answer's own T (the release's calibrated one unless overridden)
    return CaptureStore(capture_dir(settings), CaptureParams(below, c.sample_rate, c.quota_mb))
