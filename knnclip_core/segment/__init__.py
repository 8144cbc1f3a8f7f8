"""kNN-CLIP segmentation: proposals, base models, retrieval vote, fusion with the base model's
scores, outputs, evaluation, and the HTTP service (which takes a release source, so no MLflow here)."""
from .base_models import BASE_MODELS, BaseModel, BaseModelSpec, build_base_model
from .evaluate import Confusion, PanopticQuality, Sample, evaluate
from .fusion import UNKNOWN, clip_scores, fuse
from .proposals import PROPOSALS, propose
from .retrieval import FlatMemory, Retrieval, retrieve, search_allowed, vote
from .segmenter import Segment, SegmentationResult, Segmenter, SegmentParams, check_embedder

__all__ = [
    "BASE_MODELS", "BaseModel", "BaseModelSpec", "build_base_model", "PROPOSALS", "UNKNOWN", "Confusion", "FlatMemory", "PanopticQuality", "Retrieval", "Sample", "Segment",
    "SegmentParams", "SegmentationResult", "Segmenter", "check_embedder", "clip_scores", "evaluate", "fuse",
    "propose", "retrieve", "search_allowed", "vote",
]
