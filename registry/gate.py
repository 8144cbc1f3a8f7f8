"""Quality gate of a promotion: evaluate the candidate and the alias's current holder on the
configured evaluation set and refuse a regression larger than the tolerance (unless forced).

An evaluator is a callable `(snapshot) -> dict` holding at least `segment_accuracy`
(ground-truth masks classified by the release); the default one also records the memory
backbone's `embedder_id` and the `base_model_id` it was evaluated with (version tags
`knnclip.gate.<alias>.<name>`). `default_evaluator(settings)` builds one from
settings.publish.gate_eval_path with the worker's segmenter and evaluation code; its evaluation
of each release is also recorded as an MLflow evaluation run linked to the version
(registry.eval_runs), as `knnclip eval` records one.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, Optional

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError

from .compare import task_regressions
from .describe import refresh_quality
from .store import RegistryContext

logger = logging.getLogger(__name__)

Evaluator = Callable[[object], dict]
GATE_METRIC = "segment_accuracy"
REPORTED = ("segment_accuracy", "miou", "pixel_accuracy", "segments", "images")


class GateRefusedError(KnnclipError):
    """The candidate release scores worse than the current holder beyond the tolerance."""


def load_eval_samples(path: str, fmt: str = "auto", max_pixels: Optional[int] = None) -> tuple[list, list[str], dict]:
    """Ground-truth samples (knnclip_core.evaluation.Sample), class names and the reader's describe()
    of a dataset, kept in memory since the gate evaluates two releases on them."""
    from knnclip_core.readers.detect import open_reader
    from knnclip_core.evaluation.evaluate import samples_from_reader

    reader = open_reader(path, fmt)
    return list(samples_from_reader(reader, max_pixels)), [c.name for c in reader.classes], reader.describe()


def default_evaluator(settings: Settings) -> Optional[Evaluator]:
    """Evaluator over settings.publish.gate_eval_path (segment accuracy of the release's
    segmenter on the ground-truth masks) and settings.publish.gate_tasks (figures per task,
    each with its own vocabulary, under 'tasks'). None when neither is set. After each call its
    `last_eval` holds what `registry.eval_runs.record_eval` needs (report, confusion, dataset, params)."""
    path, tasks_file = settings.publish.gate_eval_path, settings.publish.gate_tasks
    if not path and not tasks_file:
        return None
    cache: dict = {}

    def evaluate_snapshot(snapshot) -> dict:
        from knnclip_core.segment import SegmentParams
        from knnclip_core.evaluation.evaluate import evaluate_with_confusion
        from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot
        from knnclip_core.evaluation.task_sets import load_task_samples, load_tasks

        if "embedders" not in cache:
            cache["embedders"] = EmbedderCache(device=settings.embed.device, settings=settings)
            if path:
                cache["samples"], cache["classes"], cache["dataset"] = load_eval_samples(
                    path, settings.publish.gate_eval_format, settings.worker.max_pixels)
            if tasks_file:
                cache["tasks"] = load_task_samples(load_tasks(tasks_file), settings.worker.max_pixels)
        params = SegmentParams.from_settings(settings)
        seg = segmenter_for_snapshot(snapshot, params, cache["embedders"])
        figures: dict = {"embedder_id": seg.embedder.id, "base_model_id": seg.base_model.id}  # the two roles
        if path:
            report, confusion = evaluate_with_confusion(seg, cache["samples"], cache["classes"], masks_from="gt")
            figures.update({k: report.get(k) for k in REPORTED})
            evaluate_snapshot.last_eval = {"report": report, "confusion": confusion, "dataset": cache["dataset"],
                                           "params": {"k": params.k, "T": params.temperature}}
        if tasks_file:
            from .compare import task_figures

            figures["tasks"] = task_figures(seg, cache["tasks"], protocols=("own",))
        return figures

    evaluate_snapshot.last_eval = None
    return evaluate_snapshot


def _log(ctx: RegistryContext, version: int, alias: str, figures: dict, role: str, evaluator=None) -> None:
    """Figures as version tags `knnclip.gate.<alias>.<name>` and metrics on the version's run; the
    evaluator's `last_eval` (if it keeps one) as an evaluation run linked to the version."""
    last = getattr(evaluator, "last_eval", None)
    if last:
        from .eval_runs import record_eval

        evaluator.last_eval = None
        record_eval(ctx, version, source=f"gate:{alias}:{role}", **last)
    mv = ctx.model_version(version)
    for name, value in figures.items():
        if name == "tasks":
            _log_tasks(ctx, mv, alias, value)
            continue
        if value is None:
            continue
        ctx.client.set_model_version_tag(ctx.model_name, str(version), f"knnclip.gate.{alias}.{name}", str(value))
        if mv.run_id and isinstance(value, (int, float)):
            ctx.client.log_metric(mv.run_id, f"gate_{alias}_{name}", float(value))
    ctx.client.set_model_version_tag(ctx.model_name, str(version), f"knnclip.gate.{alias}.role", role)
    refresh_quality(ctx, version)  # the figures in the version's description too


def _log_tasks(ctx: RegistryContext, mv, alias: str, tasks: dict) -> None:
    """Per-task figures as metrics `gate_<alias>_task_<task>_<metric>` on the version's run."""
    if not mv.run_id:
        return
    for protocol, by_task in tasks.items():
        for task, figures in by_task.items():
            for metric in ("miou", "segment_accuracy"):
                if isinstance(figures.get(metric), (int, float)):
                    ctx.client.log_metric(mv.run_id, f"gate_{alias}_task_{task}_{protocol}_{metric}",
                                          float(figures[metric]))


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
    _log(ctx, candidate, alias, cand, "candidate", evaluator)
    result = {"metric": GATE_METRIC, "candidate": cand, "incumbent": None, "incumbent_version": holder,
              "tolerance": tolerance, "delta": None}
    if holder is None or holder == candidate:
        result.update(status="first", reason=f"no other version holds {alias!r}; figures recorded")
        return result
    inc = evaluator(load(holder))
    _log(ctx, holder, alias, inc, "incumbent", evaluator)
    result["incumbent"] = inc
    regressions = task_regressions(cand.get("tasks") or {}, inc.get("tasks") or {}, tolerance)
    result["task_regressions"] = regressions
    c, i = cand.get(GATE_METRIC), inc.get(GATE_METRIC)
    if (c is None or i is None) and not (cand.get("tasks") and inc.get("tasks")):
        result.update(status="skipped", reason=f"quality gate skipped: the evaluation gave no {GATE_METRIC}")
        return result
    delta = float(c) - float(i) if c is not None and i is not None else 0.0
    result["delta"] = round(delta, 6) if c is not None and i is not None else None
    ctx.client.set_model_version_tag(ctx.model_name, str(candidate), f"knnclip.gate.{alias}.decision",
                                     json.dumps({"vs": holder, "delta": result["delta"], "force": force,
                                                 "task_regressions": [r["task"] for r in regressions]}))
    refresh_quality(ctx, candidate)
    problems = []
    if delta < -tolerance:
        problems.append(f"version {candidate} scores {GATE_METRIC} {c:.4f} against {i:.4f} for version {holder} "
                        f"(current {alias}), a drop of {-delta:.4f} beyond the tolerance {tolerance}")
    problems += [f"task {r['task']!r} drops {r['metric']} from {r['incumbent']:.4f} (version {holder}) to "
                 f"{r['candidate']:.4f}, beyond the tolerance {tolerance}" for r in regressions]
    if problems:
        msg = "; ".join(problems)
        if not force:
            raise GateRefusedError(f"promotion refused: {msg}; use --force to promote anyway")
        logger.warning("promotion forced: %s", msg)
        result.update(status="forced", reason=msg)
        return result
    parts = [f"{GATE_METRIC} {c:.4f} vs {i:.4f} for version {holder} (delta {delta:+.4f}, tolerance {tolerance})"
             ] if c is not None and i is not None else []
    if cand.get("tasks"):
        parts.append(f"no task dropped by more than {tolerance} (mIoU, own vocabulary)")
    result.update(status="passed", reason="; ".join(parts))
    return result
