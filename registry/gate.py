"""Quality gate of a promotion: evaluate the candidate and the alias's current holder on the
configured evaluation set and refuse a regression larger than the tolerance (unless forced).

An evaluator is a callable `(snapshot) -> dict` holding at least `segment_accuracy`
(ground-truth masks classified by the release). `default_evaluator(settings)` builds one from
settings.publish.gate_eval_path with the worker's segmenter and evaluation code.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, Optional

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError

from .store import RegistryContext

logger = logging.getLogger(__name__)

Evaluator = Callable[[object], dict]
GATE_METRIC = "segment_accuracy"
REPORTED = ("segment_accuracy", "miou", "pixel_accuracy", "segments", "images")


class GateRefusedError(KnnclipError):
    """The candidate release scores worse than the current holder beyond the tolerance."""


def load_eval_samples(path: str, fmt: str = "auto", max_pixels: Optional[int] = None) -> tuple[list, list[str]]:
    """Ground-truth samples (knnclip_core.segment.Sample) and class names of a dataset, kept
    in memory since the gate evaluates two releases on them."""
    from knnclip_core.readers.detect import open_reader
    from knnclip_core.segment.evaluate import samples_from_reader

    reader = open_reader(path, fmt)
    return list(samples_from_reader(reader, max_pixels)), [c.name for c in reader.classes]


def default_evaluator(settings: Settings) -> Optional[Evaluator]:
    """Evaluator over settings.publish.gate_eval_path (None when no gate dataset is set):
    segment accuracy of the release's segmenter on the ground-truth masks."""
    path = settings.publish.gate_eval_path
    if not path:
        return None
    cache: dict = {}

    def evaluate_snapshot(snapshot) -> dict:
        from knnclip_core.segment import SegmentParams, evaluate
        from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot

        if "samples" not in cache:
            cache["samples"], cache["classes"] = load_eval_samples(path, settings.publish.gate_eval_format,
                                                                  settings.worker.max_pixels)
            cache["embedders"] = EmbedderCache(device=settings.embed.device, settings=settings)
        seg = segmenter_for_snapshot(snapshot, SegmentParams.from_settings(settings), cache["embedders"])
        report = evaluate(seg, cache["samples"], cache["classes"], masks_from="gt")
        return {k: report.get(k) for k in REPORTED}

    return evaluate_snapshot


def _log(ctx: RegistryContext, version: int, alias: str, figures: dict, role: str) -> None:
    """Figures as version tags `knnclip.gate.<alias>.<name>` and metrics on the version's run."""
    mv = ctx.model_version(version)
    for name, value in figures.items():
        if value is None:
            continue
        ctx.client.set_model_version_tag(ctx.model_name, str(version), f"knnclip.gate.{alias}.{name}", str(value))
        if mv.run_id and isinstance(value, (int, float)):
            ctx.client.log_metric(mv.run_id, f"gate_{alias}_{name}", float(value))
    ctx.client.set_model_version_tag(ctx.model_name, str(version), f"knnclip.gate.{alias}.role", role)


def run_gate(ctx: RegistryContext, candidate: int, alias: str, evaluator: Optional[Evaluator],
             tolerance: float, force: bool = False, load=None) -> dict:
    """Evaluate `candidate` (and the holder of `alias`, if any) and decide.

    Returns {'status': passed|forced|skipped|first, 'candidate': figures, 'incumbent': figures
    or None, 'incumbent_version', 'delta', 'tolerance', 'reason'}. Raises GateRefusedError when the
    candidate's segment accuracy is lower than the holder's by more than `tolerance` and not `force`.
    `load(version) -> snapshot` defaults to registry.load_release."""
    if evaluator is None:
        return {"status": "skipped", "reason": "quality gate skipped: no evaluation set configured "
                                               "(publish.gate_eval_path)", "candidate": None, "incumbent": None}
    if load is None:
        from .load import load_release

        def load(v):
            return load_release(v, ctx=ctx).snapshot
    holder = ctx.aliases().get(alias)
    cand = evaluator(load(candidate))
    _log(ctx, candidate, alias, cand, "candidate")
    result = {"metric": GATE_METRIC, "candidate": cand, "incumbent": None, "incumbent_version": holder,
              "tolerance": tolerance, "delta": None}
    if holder is None or holder == candidate:
        result.update(status="first", reason=f"no other version holds {alias!r}; figures recorded")
        return result
    inc = evaluator(load(holder))
    _log(ctx, holder, alias, inc, "incumbent")
    result["incumbent"] = inc
    c, i = cand.get(GATE_METRIC), inc.get(GATE_METRIC)
    if c is None or i is None:
        result.update(status="skipped", reason=f"quality gate skipped: the evaluation gave no {GATE_METRIC}")
        return result
    delta = float(c) - float(i)
    result["delta"] = round(delta, 6)
    ctx.client.set_model_version_tag(ctx.model_name, str(candidate), f"knnclip.gate.{alias}.decision",
                                     json.dumps({"vs": holder, "delta": round(delta, 6), "force": force}))
    if delta < -tolerance:
        msg = (f"version {candidate} scores {GATE_METRIC} {c:.4f} against {i:.4f} for version {holder} "
               f"(current {alias}), a drop of {-delta:.4f} beyond the tolerance {tolerance}")
        if not force:
            raise GateRefusedError(f"promotion refused: {msg}; use --force to promote anyway")
        logger.warning("promotion forced: %s", msg)
        result.update(status="forced", reason=msg)
        return result
    result.update(status="passed", reason=f"{GATE_METRIC} {c:.4f} vs {i:.4f} for version {holder} "
                                          f"(delta {delta:+.4f}, tolerance {tolerance})")
    return result
