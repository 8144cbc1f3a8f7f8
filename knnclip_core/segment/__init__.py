"""kNN-CLIP segmentation (inference): proposals, base models, retrieval vote, fusion with the
base model's scores, outputs and releases. Evaluation is knnclip_core.evaluation; the HTTP
worker is knnclip_core.serving."""
from .base_models import BASE_MODELS, BaseModel, BaseModelSpec, build_base_model
from .fusion import UNKNOWN, clip_scores, fuse
from .proposals import PROPOSALS, propose
from .retrieval import FlatMemory, Retrieval, retrieve, search_allowed, vote
from .segmenter import Segment, SegmentationResult, Segmenter, SegmentParams, check_embedder

__all__ = [
    "BASE_MODELS", "BaseModel", "BaseModelSpec", "build_base_model", "PROPOSALS", "UNKNOWN", "FlatMemory", "Retrieval", "Segment",
    "SegmentParams", "SegmentationResult", "Segmenter", "check_embedder", "clip_scores", "fuse",
    "propose", "retrieve", "search_allowed", "vote",
]
