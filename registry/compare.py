"""Compare releases on the same evaluation tasks: per task and protocol, each release's mIoU
and segment accuracy and the change from the first release named. What a team reads before
promoting a vocabulary release; the promotion gate uses `task_regressions` to refuse a
release that drops a registered task (settings.publish.gate_tasks) beyond the tolerance."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from knnclip_core.segment import SegmentParams
from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot
from knnclip_core.evaluation.task_sets import PROTOCOLS, ClassMap, LoadedTask, evaluate_tasks, load_task_samples, load_tasks

from .load import load_release
from .store import RegistryContext

logger = logging.getLogger(__name__)

TASK_METRICS = ("miou", "segment_accuracy")


def task_figures(segmenter, tasks: Sequence[LoadedTask], protocols: Sequence[str] = PROTOCOLS,
                 class_map: Optional[ClassMap] = None) -> dict:
    """{protocol: {task: {miou, segment_accuracy, per_class_iou}}} of one segmenter."""
    out = {}
    for protocol in protocols:
        reports = evaluate_tasks(segmenter, tasks, protocol, class_map)
        out[protocol] = {name: {**{m: r.get(m) for m in TASK_METRICS}, "per_class_iou": r.get("per_class_iou", {})}
                         for name, r in reports.items()}
    return out


def compare_releases(ctx: RegistryContext, refs: Sequence[str | int], tasks_file: str,
                     protocols: Sequence[str] = PROTOCOLS, class_map: Optional[ClassMap] = None) -> dict:
    """Evaluate releases `refs` (2 or more) on the tasks of `tasks_file`.

    Returns {'versions', 'tasks', 'protocols', 'figures': {version: {protocol: {task: figures}}},
    'changes': {version: {protocol: {task: {metric: delta vs the first release}}}}}.
    Raises InputError for a bad tasks file, ReleaseNotFoundError for an unknown release."""
    assert len(refs) >= 2, "name at least two releases"
    settings = ctx.settings
    tasks = load_task_samples(load_tasks(tasks_file), settings.worker.max_pixels)
    embedders = EmbedderCache(device=settings.embed.device, settings=settings)
    params = SegmentParams.from_settings(settings)
    figures, versions = {}, []
    for ref in refs:
        release = load_release(ref, ctx=ctx)
        seg = segmenter_for_snapshot(release.snapshot, params, embedders)
        figures[release.version] = task_figures(seg, tasks, protocols, class_map)
        versions.append(release.version)
        logger.info("evaluated release %s on %d tasks", release.version, len(tasks))
    base = figures[versions[0]]
    changes = {v: {p: {t: {m: _delta(figures[v][p][t][m], base[p][t][m]) for m in TASK_METRICS}
                       for t in figures[v][p]} for p in protocols} for v in versions[1:]}
    return {"versions": versions, "tasks": [lt.task.name for lt in tasks], "protocols": list(protocols),
            "figures": figures, "changes": changes}


def _delta(b, a) -> Optional[float]:
    return None if a is None or b is None else round(float(b) - float(a), 6)


def task_regressions(candidate: dict, incumbent: dict, tolerance: float, metric: str = "miou",
                     protocol: str = "own") -> list[dict]:
    """Tasks whose `metric` (under `protocol`) drops from `incumbent` to `candidate` by more than
    `tolerance`; both are `task_figures` results. Tasks absent from either are not compared."""
    out = []
    for task, inc in (incumbent.get(protocol) or {}).items():
        cand = (candidate.get(protocol) or {}).get(task)
        if cand is None or cand.get(metric) is None or inc.get(metric) is None:
            continue
        drop = float(inc[metric]) - float(cand[metric])
        if drop > tolerance:
            out.append({"task": task, "metric": metric, "protocol": protocol, "incumbent": inc[metric],
                        "candidate": cand[metric], "drop": round(drop, 6)})
    return out


def format_comparison(res: dict) -> str:
    """Human table: per protocol and task, each release's mIoU / accuracy and the change."""
    vs = res["versions"]
    lines = []
    for p in res["protocols"]:
        lines.append(f"{p} vocabulary: " + "  ".join(f"v{v} mIoU / acc" for v in vs))
        for t in res["tasks"]:
            cells = []
            for v in vs:
                f = res["figures"][v][p][t]
                cell = f"{_pct(f['miou'])} / {_pct(f['segment_accuracy'])}"
                if v in res["changes"]:
                    cell += f" ({_signed(res['changes'][v][p][t]['miou'])} mIoU)"
                cells.append(cell)
            lines.append(f"  {t:<16} " + "  ".join(cells))
    return "\n".join(lines)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _signed(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"
