"""Segmentation quality: mIoU, per-class IoU, pixel accuracy, segment accuracy, PQ.

Array level: `Confusion` (semantic maps, pred -1 = unknown, gt outside [0, C) = ignored)
and `PanopticQuality` (lists of (class, mask) segments, COCO rules: a match is IoU > 0.5
with the same class; predictions mostly over void are not false positives).
`evaluate(segmenter, samples, classes, ...)` runs a segmenter over ground-truth samples.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..readers.base import normalise_class_name

logger = logging.getLogger(__name__)


class Confusion:
    """Pixel confusion matrix (C, C + 1): rows ground truth, columns prediction, last = unknown;
    `names` the class of each row when known."""

    def __init__(self, n_classes: int, names: Optional[Sequence[str]] = None):
        self.n = n_classes
        self.names = list(names) if names is not None else None
        self.matrix = np.zeros((n_classes, n_classes + 1), dtype=np.int64)

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Accumulate one image: pred and gt (H, W) ints; gt outside [0, C) is ignored,
        pred outside [0, C) counts as unknown (always wrong)."""
        assert pred.shape == gt.shape, (pred.shape, gt.shape)
        valid = (gt >= 0) & (gt < self.n)
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        p = np.where((p >= 0) & (p < self.n), p, self.n)
        self.matrix += np.bincount(g * (self.n + 1) + p, minlength=self.n * (self.n + 1)).reshape(self.n, self.n + 1)

    def scores(self, class_names: Sequence[str]) -> dict:
        """{'miou', 'pixel_accuracy', 'per_class_iou': {name: iou}, 'per_class_pixels': {name:
        ground-truth pixels}} over classes whose union is not empty (mIoU = mean of those; a class
        predicted but absent from the truth counts 0)."""
        m = self.matrix
        tp = np.diag(m[:, : self.n]).astype(np.float64)
        gt_tot = m.sum(axis=1).astype(np.float64)
        pred_tot = m[:, : self.n].sum(axis=0).astype(np.float64)
        union = gt_tot + pred_tot - tp
        present = [c for c in range(self.n) if union[c] > 0]
        per_class = {class_names[c]: float(tp[c] / union[c]) for c in present}
        total = m.sum()
        return {"miou": float(np.mean(list(per_class.values()))) if per_class else 0.0,
                "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
                "per_class_iou": per_class, "per_class_pixels": {class_names[c]: int(gt_tot[c]) for c in present},
                "pixels": int(total)}


class PanopticQuality:
    """PQ = SQ x RQ per class, averaged over classes that appear (COCO panoptic rules)."""

    def __init__(self, n_classes: int):
        self.n = n_classes
        self.iou_sum = np.zeros(n_classes)
        self.tp = np.zeros(n_classes, dtype=np.int64)
        self.fp = np.zeros(n_classes, dtype=np.int64)
        self.fn = np.zeros(n_classes, dtype=np.int64)

    def add(self, pred: Sequence[tuple[int, np.ndarray]], gt: Sequence[tuple[int, np.ndarray]],
            void: Optional[np.ndarray] = None) -> None:
        """Accumulate one image: (class index, bool mask) segments; `void` bool mask of unlabelled pixels."""
        gt_matched, pred_matched = set(), set()
        for gi, (gc, gm) in enumerate(gt):
            g_area = gm.sum()
            for pi, (pc, pm) in enumerate(pred):
                if pc != gc or pi in pred_matched:
                    continue
                inter = np.logical_and(gm, pm).sum()
                if not inter:
                    continue
                p_void = np.logical_and(pm, void).sum() if void is not None else 0
                iou = inter / (g_area + pm.sum() - inter - p_void)
                if iou > 0.5:
                    gt_matched.add(gi)
                    pred_matched.add(pi)
                    self.tp[gc] += 1
                    self.iou_sum[gc] += iou
                    break
        for gi, (gc, _) in enumerate(gt):
            if gi not in gt_matched:
                self.fn[gc] += 1
        for pi, (pc, pm) in enumerate(pred):
            if pi in pred_matched or not (0 <= pc < self.n):
                continue
            area = pm.sum()
            if void is not None and area and np.logical_and(pm, void).sum() / area > 0.5:
                continue
            self.fp[pc] += 1

    def scores(self, class_names: Sequence[str]) -> dict:
        """{'pq', 'sq', 'rq', 'per_class_pq'} over classes with any TP, FP or FN."""
        seen = (self.tp + self.fp + self.fn) > 0
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        pq = np.divide(self.iou_sum, denom, out=np.zeros(self.n), where=denom > 0)
        sq = np.divide(self.iou_sum, self.tp, out=np.zeros(self.n), where=self.tp > 0)
        rq = np.divide(self.tp, denom, out=np.zeros(self.n), where=denom > 0)
        if not seen.any():
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "per_class_pq": {}}
        return {"pq": float(pq[seen].mean()), "sq": float(sq[seen].mean()), "rq": float(rq[seen].mean()),
                "per_class_pq": {class_names[c]: float(pq[c]) for c in np.nonzero(seen)[0]}}


@dataclass
class Sample:
    """One evaluation image: RGB uint8 (H, W, 3) and ground-truth (class name, bool mask) segments."""

    image: np.ndarray
    segments: list
    name: str = ""


def samples_from_reader(reader, max_pixels: Optional[int] = None, limit: Optional[int] = None) -> Iterator[Sample]:
    """Sample per annotated image of a knnclip_core reader (streamed). Images the reader flagged,
    that cannot be read, or whose size differs from their masks are skipped with a warning."""
    from ..segment.render import read_image

    done = 0
    for item in reader:
        if limit is not None and done >= limit:
            return
        named = [s for s in item.segments if s.class_name and not s.error]
        segs = [(s.class_name, m) for s, m in ((s, s.mask) for s in named) if m is not None]  # decoded once
        if not segs or item.errors:
            continue
        try:
            image = read_image(item.image_path, max_pixels)
        except InputError as exc:
            logger.warning("skipping %s: %s", item.rel_path, exc)
            continue
        if image.shape[:2] != segs[0][1].shape:
            logger.warning("skipping %s: image and mask sizes differ", item.rel_path)
            continue
        done += 1
        yield Sample(image=image, segments=segs, name=item.rel_path)


def gt_label_map(shape: tuple[int, int], segments: Sequence[tuple[int, np.ndarray]]) -> np.ndarray:
    """(H, W) int32 of class indices painted in order, -1 where no segment covers a pixel."""
    out = np.full(shape, -1, dtype=np.int32)
    for c, m in segments:
        out[m] = c
    return out


def evaluate(segmenter, samples: Iterable[Sample], classes: Sequence[str], masks_from: str = "gt",
             panoptic: bool = False, canonical: Optional[Callable[[str], str]] = None) -> dict:
    """The report of `evaluate_with_confusion` (see there)."""
    return evaluate_with_confusion(segmenter, samples, classes, masks_from, panoptic, canonical)[0]


def evaluate_with_confusion(segmenter, samples: Iterable[Sample], classes: Sequence[str], masks_from: str = "gt",
                            panoptic: bool = False, canonical: Optional[Callable[[str], str]] = None
                            ) -> tuple[dict, Confusion]:
    """Run `segmenter` over `samples` answering with `classes` (the dataset's class list).

    masks_from 'gt' classifies the ground-truth masks (segment accuracy is then defined);
    'proposals' uses the segmenter's own proposals. With `panoptic` PQ is computed too.
    `canonical(name)` compares predictions and ground truth by canonical name (a class map;
    the report then names canonical classes). Returns a JSON-ready dict with miou,
    pixel_accuracy, segment_accuracy, per_class_iou, per_class_pixels, ..., and the two roles it
    ran with: embedder_id (memory backbone) and base_model_id; and the pixel Confusion (named rows)."""
    assert masks_from in ("gt", "proposals"), masks_from
    request = list(classes)
    canon = canonical or normalise_class_name
    classes = list(dict.fromkeys(canon(c) for c in request)) if canonical else request
    index = {canon(c): i for i, c in enumerate(classes)}
    conf = Confusion(len(classes), classes)
    pq = PanopticQuality(len(classes)) if panoptic else None
    seg_right = seg_total = images = unknown_segments = 0
    out_classes: Optional[list[str]] = None
    for sample in samples:
        gt = [(index[canon(n)], np.asarray(m, dtype=bool)) for n, m in sample.segments if canon(n) in index]
        gt = [(c, m) for c, m in gt if m.any()]
        if not gt:
            continue
        images += 1
        res = segmenter.segment(sample.image, masks=[m for _, m in gt] if masks_from == "gt" else None,
                                vocabulary=request, proposals="masks" if masks_from == "gt" else None)
        if out_classes is None:
            out_classes = res.classes
        remap = np.array([index.get(canon(c), -1) for c in res.classes] + [-1], dtype=np.int32)
        pred = remap[res.label_map]  # label -1 -> last entry
        conf.add(pred, gt_label_map(sample.image.shape[:2], gt))
        if masks_from == "gt":
            for (c, _), s in zip(gt, res.segments):
                seg_total += 1
                seg_right += int(s.label >= 0 and remap[s.label] == c)
                unknown_segments += int(s.label < 0)
        if pq is not None:
            void = ~np.logical_or.reduce([m for _, m in gt])
            pred_segs = [(int(remap[p["class_index"]]), res.panoptic_map == p["id"]) for p in res.panoptic]
            pq.add(pred_segs, gt, void)
    report = conf.scores(classes)
    report.update({"embedder_id": getattr(getattr(segmenter, "embedder", None), "id", None),
                   "base_model_id": getattr(getattr(segmenter, "base_model", None), "id", None),
                   "images": images, "masks_from": masks_from,
                   "segment_accuracy": (seg_right / seg_total if seg_total else None),
                   "segments": seg_total, "unknown_segments": unknown_segments})
    if pq is not None:
        report.update(pq.scores(classes))
    return report, conf
