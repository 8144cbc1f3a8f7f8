"""Validation: facts about every image and segment, judged by Great Expectations suites."""
from .facts import ImageFacts, SegmentFacts, inspect_item
from .reasons import IMAGE_REASONS, SEGMENT_REASONS

__all__ = ["ImageFacts", "SegmentFacts", "inspect_item", "IMAGE_REASONS", "SEGMENT_REASONS"]
