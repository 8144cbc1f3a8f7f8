"""kNN-CLIP inference on one image: proposals -> pooled features -> P_ret (+ P_base) -> labels.

`Segmenter(embedder, memory, params, base_model=...)` is pure: no I/O, no registry. Two
roles: `embedder` is the memory backbone (it must be the one the memory was built with,
checked by id when the memory records one) and makes the query vectors; the base model
(base_models.py; default: built from `params.base_model`) proposes the masks and gives
P_base over any class names, or nothing (retrieval alone; below T a segment is unknown).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..classnames import synonyms
from ..config import WorkerConfig
from ..errors import EmbedderMismatchError, InputError
from ..readers.base import normalise_class_name
from .base_models import BaseModel, BaseModelSpec, build_base_model
from .calibrate import resolve_threshold
from .fusion import UNKNOWN, fuse
from .panoptic import PanopticParams, compose
from .regroup import agreeing_groups, smoothed_classes
from .retrieval import Memory, retrieve

logger = logging.getLogger(__name__)

MAX_EXTRA_CLASSES = 256      # extra class names one request may add
MAX_REQUEST_CLASSES = 4096   # classes one request may restrict its answer to


_WORKER = WorkerConfig.model_fields


@dataclass
class SegmentParams:
    """Inference knobs. Their defaults are the `worker` settings' Field defaults
    (knnclip_core/config.py, the one source of k, temperature, lambda, T and proposals)."""

    k: int = _WORKER["k"].default
    temperature: float = _WORKER["temperature"].default
    confidence: str = _WORKER["confidence"].default
    fusion_lambda: float = _WORKER["fusion_lambda"].default
    confidence_threshold: Optional[float] = _WORKER["confidence_threshold"].default  # operator override; None: the release's calibrated T
    fallback_threshold: float = _WORKER["fallback_threshold"].default  # T when the release carries none (calibrate.resolve_threshold)
    proposals: str = _WORKER["proposals"].default
    proposal_options: dict = field(default_factory=_WORKER["proposal_options"].default_factory)
    base_model: BaseModelSpec = field(default_factory=BaseModelSpec)
    memory_backbone: Optional[str] = None
    panoptic: PanopticParams = field(default_factory=PanopticParams)
    merge_rounds: int = _WORKER["merge_rounds"].default  # regroup.py: generated proposals retrieval gives one class, joined and asked again
    merge_scope: str = _WORKER["merge_scope"].default  # regroup.py: 'touching' (joined where they touch) | 'class' (all of a class)
    merge_smoothing: float = _WORKER["merge_smoothing"].default  # regroup.py: weight of the touching neighbours' scores in the class that joins

    @classmethod
    def from_settings(cls, settings) -> "SegmentParams":
        """Parameters from `settings.worker`."""
        w = settings.worker
        b = w.base_model
        return cls(k=w.k, temperature=w.temperature, confidence=w.confidence, fusion_lambda=w.fusion_lambda,
                   confidence_threshold=w.confidence_threshold, fallback_threshold=w.fallback_threshold,
                   proposals=w.proposals, proposal_options=dict(w.proposal_options or {}),
                   base_model=BaseModelSpec(kind=b.kind, backbone=b.backbone, options=dict(b.options or {})),
                   memory_backbone=w.memory_backbone, merge_rounds=w.merge_rounds, merge_scope=w.merge_scope,
                   merge_smoothing=w.merge_smoothing, panoptic=PanopticParams(**dict(w.panoptic or {})))


@dataclass
class Segment:
    """One proposal with its decision."""

    mask: np.ndarray          # bool HxW
    label: int                # index into SegmentationResult.classes, or UNKNOWN (-1)
    score: float              # P[label] (0 for UNKNOWN)
    scores: np.ndarray        # (C,) fused scores
    confidence: float         # retrieval confidence (retrieval.CONFIDENCES)
    fused: bool               # retrieval took part in the decision
    neighbours: list          # [(memory row, similarity)] that voted
    retrieval_label: int = -1  # argmax of P_ret (-1: no vote), for disagreement capture
    base_label: int = -1       # argmax of P_base (-1: no base model)


@dataclass
class SegmentationResult:
    """Semantic label map, panoptic segments and per-segment scores of one image."""

    classes: list[str]
    label_map: np.ndarray              # (H, W) int32 class index, -1 = unknown / not covered
    segments: list[Segment]
    panoptic_map: np.ndarray           # (H, W) int32 panoptic id, 0 = void
    panoptic: list[dict]               # {id, class, class_index, is_thing, area, score, segments}
    timings: dict = field(default_factory=dict)
    threshold: Optional[float] = None  # the confidence threshold T the answer was decided with

    def to_json(self, segment_ids: Optional[Sequence[str]] = None, top: int = 5) -> dict:
        """JSON-ready dict: classes, per-segment top scores and provenance, panoptic segments."""
        segs = []
        for i, s in enumerate(self.segments):
            order = np.argsort(-s.scores)[:top] if len(s.scores) else []
            ys, xs = np.nonzero(s.mask)
            segs.append({
                "id": i, "class": self.classes[s.label] if s.label >= 0 else "unknown",
                "class_index": int(s.label), "score": round(float(s.score), 6), "area": int(len(ys)),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(ys) else None,
                "confidence": round(float(s.confidence), 6), "fused": bool(s.fused),
                "scores": {self.classes[j]: round(float(s.scores[j]), 6) for j in order},
                "provenance": [{"row": int(r), "similarity": round(float(d), 6),
                                "segment_id": (str(segment_ids[r]) if segment_ids is not None else None)}
                               for r, d in s.neighbours],
            })
        return {"classes": self.classes, "height": int(self.label_map.shape[0]),
                "width": int(self.label_map.shape[1]), "segments": segs, "panoptic": self.panoptic,
                "timings": {k: round(v, 6) for k, v in self.timings.items()}}


def check_embedder(embedder, memory) -> None:
    """Raise EmbedderMismatchError when the memory records another embedder id or dimension."""
    mem_id = getattr(memory, "embedder_id", None)
    if mem_id and mem_id != embedder.id:
        raise EmbedderMismatchError(
            f"the release was built with embedder {mem_id!r} but the worker has {embedder.id!r}.")
    index = getattr(memory, "index", None)
    d = getattr(index, "d", None)
    if d is not None and d != embedder.dim:
        raise EmbedderMismatchError(f"the release holds {d}-dim vectors but the embedder makes {embedder.dim}-dim ones.")


class Segmenter:
    """kNN-CLIP segmenter over one (memory backbone, memory) pair and a base model.

    `thing_classes`: names segmented as instances in the panoptic output (others are stuff).
    `base_model`: a base_models.BaseModel (default: `build_base_model(params.base_model, embedder)`).
    `region_memory`: optional memory of proposal-like regions (regroup.proposal_like_regions) that
    generated proposals are first asked against (joined regions and caller masks use `memory`).
    Raises EmbedderMismatchError when the memory was built with another embedder, KnnclipError
    when the base model cannot be built."""

    def __init__(self, embedder, memory: Memory, params: Optional[SegmentParams] = None,
                 thing_classes: Optional[Sequence[str]] = None, base_model: Optional[BaseModel] = None,
                 region_memory: Optional[Memory] = None):
        check_embedder(embedder, memory)
        if region_memory is not None:
            check_embedder(embedder, region_memory)
        self.region_memory = region_memory
        self.embedder = embedder
        self.memory = memory
        self.params = params or SegmentParams()
        self.base_model = base_model if base_model is not None else build_base_model(self.params.base_model, embedder)
        self.vocabulary = list(memory.vocabulary)
        self._by_norm = {normalise_class_name(s): n for n in reversed(self.vocabulary) for s in synonyms(n)}
        self._by_norm.update({normalise_class_name(n): n for n in self.vocabulary})  # any synonym names its class
        self.thing_classes = {normalise_class_name(n) for n in (thing_classes or [])}
        self.has_text = bool(self.base_model.open_vocabulary)
        # T in force: the operator's override, else the release's calibrated T, else the fallback
        self.threshold, self.threshold_source = resolve_threshold(self.params, getattr(memory, "manifest", None))
        logger.info("confidence threshold T = %.4g (%s)", self.threshold, self.threshold_source)

    def resolve_classes(self, vocabulary: Optional[Sequence[str]] = None,
                        extra_classes: Sequence[str] = ()) -> tuple[list[str], bool]:
        """Output classes and whether retrieval is restricted to them.

        Without `vocabulary`: the memory's classes plus the extras; with it: exactly the named
        classes (memory spelling where a name matches) plus the extras, restricted."""
        def spell(name: str) -> str:
            return self._by_norm.get(normalise_class_name(name), name.strip())

        if len(extra_classes) > MAX_EXTRA_CLASSES or (vocabulary and len(vocabulary) > MAX_REQUEST_CLASSES):
            raise InputError(f"a request may name at most {MAX_EXTRA_CLASSES} extra classes "
                             f"and {MAX_REQUEST_CLASSES} vocabulary classes.")
        if extra_classes and not self.has_text:
            logger.info("extra classes %s ignored: no open-vocabulary base model", list(extra_classes))
            extra_classes = ()
        base = [spell(n) for n in vocabulary] if vocabulary else list(self.vocabulary)
        out, seen = [], set()
        for name in [*base, *(spell(n) for n in extra_classes)]:
            key = normalise_class_name(name)
            if key and key not in seen:
                seen.add(key)
                out.append(name)
        if not out:
            raise InputError("the request names no classes.")
        return out, bool(vocabulary)

    def warm_up(self) -> None:
        """Let the base model prepare the release vocabulary (CLIP: encode its text once)."""
        self.base_model.warm_up(self.vocabulary)

    def segment(self, image: np.ndarray, masks: Optional[Sequence[np.ndarray]] = None,
                vocabulary: Optional[Sequence[str]] = None, extra_classes: Sequence[str] = (),
                proposals: Optional[str] = None) -> SegmentationResult:
        """Segment an RGB uint8 (H, W, 3) image.

        `masks`: caller-supplied proposals (used with proposals='masks', the default when given);
        `vocabulary`: restrict the answer to these classes; `extra_classes`: class names added to
        the vocabulary (found by the base model's scores only). Raises InputError on a bad image."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise InputError("the image must be an RGB picture (H x W x 3, 8 bit).")
        p = self.params
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        method = proposals or ("masks" if masks is not None else p.proposals)
        props = self.base_model.propose(image, method, masks=masks, **p.proposal_options)
        t1 = time.perf_counter()
        timings["proposals"] = t1 - t0
        classes, restrict = self.resolve_classes(vocabulary, extra_classes)
        region_memory = self.region_memory if method != "masks" else None
        xq, ret, P_base, P, labels, fused = self._decide(image, props, classes, restrict, timings, memory=region_memory)
        for _ in range(p.merge_rounds if method != "masks" else 0):  # regroup.py: fragments that agree
            groups = agreeing_groups(props, smoothed_classes(props, P, p.merge_smoothing), p.merge_scope)
            if len(groups) == len(props):
                break
            props = [props[g[0]] if len(g) == 1 else np.logical_or.reduce([props[j] for j in g]) for g in groups]
            keep = {i: g[0] for i, g in enumerate(groups) if len(g) == 1}
            xq, ret, P_base, P, labels, fused = self._decide(image, props, classes, restrict, timings, xq, keep)
        t4 = time.perf_counter()
        # which class each side would give alone (capture: base model and memory disagreeing)
        n_cls = ret.P.shape[1] if ret.P.ndim == 2 else 0
        ret_top = np.where(ret.P.sum(axis=1) > 0, ret.P.argmax(axis=1), -1) if n_cls else np.full(len(props), -1)
        base_top = P_base.argmax(axis=1) if P_base is not None and n_cls else np.full(len(props), -1)
        segments = [Segment(mask=m, label=int(labels[i]),
                            score=float(P[i, labels[i]]) if labels[i] >= 0 else 0.0, scores=P[i],
                            confidence=float(ret.confidence[i]), fused=bool(fused[i]),
                            neighbours=[(int(r), float(d)) for r, d in zip(ret.I[i], ret.D[i]) if r >= 0],
                            retrieval_label=int(ret_top[i]), base_label=int(base_top[i]))
                    for i, m in enumerate(props)]
        label_map, panoptic_map, panoptic = self._compose(image.shape[:2], segments, classes,
                                                          merge=method != "masks")
        timings["outputs"] = time.perf_counter() - t4
        return SegmentationResult(classes=classes, label_map=label_map, segments=segments,
                                  panoptic_map=panoptic_map, panoptic=panoptic, timings=timings,
                                  threshold=self.threshold)

    def _decide(self, image, props, classes, restrict, timings, xq_before=None, keep=None, memory=None):
        """(xq, Retrieval, P_base, P, labels, fused) of `props`; `keep` {new index: old index} reuses the
        rows of `xq_before` for proposals that did not change. Adds to `timings`."""
        p = self.params
        t1 = time.perf_counter()
        if keep:
            fresh = [i for i in range(len(props)) if i not in keep]
            xq = np.zeros((len(props), self.embedder.dim), np.float32)
            xq[list(keep)] = xq_before[list(keep.values())]
            if fresh:
                xq[fresh] = self.embedder.embed_masks(image, [props[i] for i in fresh])
        else:
            xq = self.embedder.embed_masks(image, props) if props else np.zeros((0, self.embedder.dim), np.float32)
        t2 = time.perf_counter()
        ret = retrieve(memory if memory is not None else self.memory, xq, p.k, p.temperature, classes, restrict=restrict, confidence_kind=p.confidence)
        t3 = time.perf_counter()
        P_base = self.base_model.scores(image, props, classes, shared=(self.embedder.id, xq)) if props else None
        t_base = time.perf_counter()
        P, labels, fused = fuse(ret.P, ret.confidence, P_base, p.fusion_lambda, self.threshold)
        t4 = time.perf_counter()
        for key, dt in (("forward", t2 - t1), ("retrieval", t3 - t2), ("base_model", t_base - t3), ("fusion", t4 - t_base)):
            timings[key] = timings.get(key, 0.0) + dt
        return xq, ret, P_base, P, labels, fused

    def _compose(self, hw: tuple[int, int], segments: list[Segment], classes: list[str], merge: bool = True):
        """Label map and panoptic output (panoptic.compose: painting by score, thresholds, stuff
        merged by class, touching thing fragments merged when `merge`: generated proposals)."""
        if not segments:
            return np.full(hw, UNKNOWN, np.int32), np.zeros(hw, np.int32), []
        owner, panoptic_map, panoptic = compose(
            [s.mask for s in segments], [s.label for s in segments], [s.score for s in segments],
            lambda c: normalise_class_name(classes[c]) in self.thing_classes, self.params.panoptic, merge=merge)
        seg_labels = np.array([s.label for s in segments] + [UNKNOWN], dtype=np.int32)
        for entry in panoptic:
            entry["class"] = classes[entry["class_index"]]
        return seg_labels[owner], panoptic_map, panoptic  # owner -1 -> last entry (UNKNOWN)
