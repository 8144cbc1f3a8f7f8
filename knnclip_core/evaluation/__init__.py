"""Evaluation of a segmenter against ground truth: scores (`evaluate`: mIoU, segment accuracy,
PQ), the per-class report (`eval_report`) and the named task sets a release is judged on
(`task_sets`). Inference itself lives in knnclip_core.segment."""
from .evaluate import Confusion, PanopticQuality, Sample, evaluate, evaluate_with_confusion, samples_from_reader

__all__ = ["Confusion", "PanopticQuality", "Sample", "evaluate", "evaluate_with_confusion", "samples_from_reader"]
