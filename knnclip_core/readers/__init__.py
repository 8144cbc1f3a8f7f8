"""Readers of labelled segmentation data: ADE20K, COCO panoptic, COCO instances, semantic PNG."""
from . import ade20k, coco_instances, coco_panoptic, semantic_png  # noqa: F401  (register the formats)
from .base import READERS, ClassInfo, ImageItem, Reader, SegmentItem, normalise_class_name
from .detect import FORMATS, detect_format, open_reader

__all__ = ["READERS", "ClassInfo", "ImageItem", "Reader", "SegmentItem", "FORMATS", "detect_format", "open_reader",
           "normalise_class_name"]
