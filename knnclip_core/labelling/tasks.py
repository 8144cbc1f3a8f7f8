"""Captures as annotation tasks, and the files every export shares.

An export folder holds `images/<capture id>.png` (the pixels the worker segmented),
`export.json` (which capture, release and source each task came from, and the
vocabulary) and the tool's own file(s). The image's file name is the capture id, so the
provenance survives tools that keep nothing else (CVAT drops unknown fields).
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import InputError
from .capture import CaptureStore

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
IMAGES_DIR = "images"


@dataclass
class Proposal:
    """One proposed mask of a task: its predicted class and why it was captured."""

    mask_rle: str
    label: Optional[str]
    reasons: list[str]
    score: float = 0.0
    confidence: float = 0.0
    index: int = 0
    neighbours: list[str] = field(default_factory=list)

    def mask(self, height: int, width: int) -> np.ndarray:
        return mask_utils.decode({"size": [height, width], "counts": self.mask_rle.encode()}).astype(bool)


@dataclass
class Task:
    """One image to annotate, with its proposals and where it came from."""

    task_id: int
    capture_id: str
    image_path: Path
    width: int
    height: int
    release: dict
    source: str
    classes: list[str]
    proposals: list[Proposal]
    name: Optional[str] = None

    @property
    def image_name(self) -> str:
        return f"{IMAGES_DIR}/{self.capture_id}.png"

    def origin(self) -> dict:
        return {"task_id": self.task_id, "capture_id": self.capture_id, "release": self.release,
                "source": self.source, "name": self.name,
                "reasons": sorted({r for p in self.proposals for r in p.reasons})}


def tasks_from_store(store: CaptureStore, limit: Optional[int] = None, reasons: Sequence[str] = ()) -> list[Task]:
    """Tasks from the captures of `store`, oldest first (at most `limit`); with `reasons`,
    only proposals captured for one of them (tasks left without proposals are skipped)."""
    out: list[Task] = []
    for cid in store.ids():
        try:
            rec = store.read(cid)
        except (OSError, ValueError) as exc:
            logger.warning("capture %s is unreadable, skipped: %s", cid, exc)
            continue
        props = [Proposal(mask_rle=s["mask_rle"], label=s.get("proposed_class"), reasons=list(s["reasons"]),
                          score=s.get("score", 0.0), confidence=s.get("confidence", 0.0), index=s.get("index", 0),
                          neighbours=[n["segment_id"] for n in s.get("neighbours", []) if n.get("segment_id")])
                 for s in rec["segments"] if not reasons or set(s["reasons"]) & set(reasons)]
        if not props:
            continue
        out.append(Task(task_id=len(out) + 1, capture_id=cid, image_path=Path(rec["image_path"]),
                        width=rec["width"], height=rec["height"], release=rec.get("release") or {},
                        source=rec.get("source", "?"), classes=list(rec.get("classes") or []), proposals=props,
                        name=rec.get("name")))
        if limit is not None and len(out) >= limit:
            break
    return out


def vocabulary_of(tasks: Iterable[Task]) -> list[str]:
    """The classes the tasks' releases know, and every proposed class, sorted."""
    names = set()
    for t in tasks:
        names.update(t.classes)
        names.update(p.label for p in t.proposals if p.label)
    names.discard("unknown")
    return sorted(names)


def start_export(tasks: Sequence[Task], out: Path, tool: str, extra: Optional[dict] = None) -> list[str]:
    """Create `out`, copy the images, write export.json; returns the vocabulary.
    Raises InputError when there is no task, or `out` exists and is not an empty folder."""
    if not tasks:
        raise InputError("there is nothing to export: the capture store holds no doubtful segments")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder")
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for t in tasks:
        shutil.copyfile(t.image_path, out / t.image_name)
    vocab = vocabulary_of(tasks)
    (out / EXPORT_FILE).write_text(json.dumps({
        "tool": tool, "created": time.time(), "vocabulary": vocab, **(extra or {}),
        "tasks": {t.capture_id: t.origin() for t in tasks}}, indent=1))
    return vocab


def read_export(folder: Path) -> dict:
    """export.json of an export folder ({} when absent or unreadable)."""
    path = folder / EXPORT_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        logger.warning("%s is unreadable; the import is tagged without it", path)
        return {}


def coco_dict(tasks: Sequence[Task], vocab: Sequence[str]) -> dict:
    """COCO instances of the proposals (compressed RLE, the proposed class; unknown without
    a proposal gets the first class), each image and annotation with a `knnclip` origin."""
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(vocab)]
    cat_of = {n: i + 1 for i, n in enumerate(vocab)}
    images, anns = [], []
    for t in tasks:
        images.append({"id": t.task_id, "file_name": t.image_name, "width": t.width, "height": t.height,
                       "knnclip": t.origin()})
        for p in t.proposals:
            m = p.mask(t.height, t.width)
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            anns.append({"id": len(anns) + 1, "image_id": t.task_id, "category_id": cat_of.get(p.label, 1),
                         "segmentation": {"size": [t.height, t.width], "counts": rle["counts"].decode()},
                         "area": float(mask_utils.area(rle)), "bbox": [x, y, w, h], "iscrowd": 0,
                         "knnclip": {"reasons": p.reasons, "score": p.score, "confidence": p.confidence,
                                     "neighbours": p.neighbours[:10]}})
    return {"info": {"description": "knnclip captures for labelling", "version": "1.0"},
            "licenses": [], "images": images, "annotations": anns, "categories": cats}
