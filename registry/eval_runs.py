"""Evaluations as MLflow runs linked to the model version they evaluated, and the quality of
each release read back from them.

`record_eval` logs one run in the experiment `knnclip-eval`: metrics (mIoU, pixel accuracy,
segment accuracy, PQ), parameters (dataset, masks, embedder, base model, k, T), the eval
dataset as an MLflow dataset input, the per-class IoU table (`per_class_iou.json`, MLflow's
table format) and a confusion-matrix PNG. The run carries the model name and version as tags
(and the version's logged model as input, and its metrics, when the version has one); the
version gets `knnclip.eval.latest_run` and `knnclip.eval.latest_miou` pointing back.
`latest_quality` and `quality_history` read the runs for `releases list|show` and the dashboard.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Optional

from knnclip_core.redact import redact_obj, redact_text
from knnclip_core.evaluation.eval_report import confusion_png, per_class_rows

from .describe import refresh_quality
from .eval_tags import EVAL_EXPERIMENT, TAG_LATEST_MIOU, TAG_LATEST_RUN  # noqa: F401 (re-exported)
from .store import RegistryContext

logger = logging.getLogger(__name__)

RUN_MODEL = "knnclip.model_name"                # on the eval run
RUN_VERSION = "knnclip.model_version"
RUN_DATASET = "knnclip.eval.dataset"
RUN_SOURCE = "knnclip.eval.source"              # cli | gate:<alias>:<role>
RUN_SET = "knnclip.eval.set"                    # fingerprint of the evaluation set (see `eval_set_id`)
METRICS = ("miou", "pixel_accuracy", "segment_accuracy", "pq", "sq", "rq")
COUNTS = ("images", "segments", "unknown_segments", "pixels")
TABLE_FILE = "per_class_iou.json"
CONFUSION_FILE = "confusion_matrix.png"
MAX_RUNS = 5000


def logged_model_id(mv) -> Optional[str]:
    """The MLflow 3 logged model behind a model version (its model_id, or a `models:/m-...` source),
    None for a version registered from a plain run artifact folder."""
    found = getattr(mv, "model_id", None) or re.fullmatch(r"models:/(m-[0-9a-f]+)/?", mv.source or "")
    return found if isinstance(found, str) or found is None else found.group(1)


def _dataset_input(dataset: dict):
    """MLflow DatasetInput (context 'evaluation') of a reader's description {'format', 'root', 'dataset'}."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = json.dumps({"uri": str(dataset.get("root")), "format": dataset.get("format")}, sort_keys=True)
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    ds = Dataset(name=str(dataset.get("dataset") or Path(str(dataset.get("root"))).name), digest=digest,
                 source_type="local", source=source)
    return DatasetInput(ds, tags=[InputTag("mlflow.data.context", "evaluation")])


def eval_set_id(dataset: dict, params: Optional[dict] = None, masks_from: Optional[str] = None) -> Optional[str]:
    """Which evaluation set a run measured: a short sha256 of the set's files (paths, sizes, mtimes;
    knnclip_core.fingerprint), its format, the image limit and where masks came from. Figures
    are comparable across versions only within one set. None when the set's folder is gone."""
    from knnclip_core.fingerprint import source_fingerprint

    root = dataset.get("root")
    if not root or not Path(str(root)).exists():
        return None
    key = json.dumps({"files": source_fingerprint(str(root)), "format": dataset.get("format"),
                      "limit": (params or {}).get("limit"), "masks_from": masks_from}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def record_eval(ctx: RegistryContext, version: int, report: dict, confusion=None, dataset: Optional[dict] = None,
                params: Optional[dict] = None, source: str = "cli") -> dict:
    """Log evaluation `report` of release `version` as a finished run of the `knnclip-eval` experiment.

    `confusion` (knnclip_core Confusion) gives the confusion-matrix PNG, `dataset` a reader's
    describe(), `params` extra run parameters (k, T, ...). Returns {'run_id', 'experiment_id',
    'experiment', 'run_name', 'version', 'model_id'}. Raises ReleaseNotFoundError for an unknown
    version, MlflowException when the store refuses (the run is then marked FAILED)."""
    from mlflow.entities import LoggedModelInput, Metric, Param

    client = ctx.client
    mv = ctx.model_version(version)
    model_id = logged_model_id(mv)
    dataset = dataset or {}
    name = str(dataset.get("dataset") or "dataset")
    exp_id = ctx.experiment_id(EVAL_EXPERIMENT)
    set_id = eval_set_id(dataset, params, report.get("masks_from"))
    run = client.create_run(exp_id, run_name=f"eval-v{int(version)}-{name}",
                            tags=redact_obj({RUN_MODEL: ctx.model_name, RUN_VERSION: str(int(version)), RUN_DATASET: name,
                                             RUN_SOURCE: source, **({RUN_SET: set_id} if set_id else {}),
                                             "mlflow.note.content": f"Evaluation of models:/{ctx.model_name}/"
                                                                    f"{int(version)} on {name} ({report.get('images')} images)."}))
    run_id = run.info.run_id
    try:
        ds_input = _dataset_input(dataset) if dataset else None
        client.log_inputs(run_id, datasets=[ds_input] if ds_input else None,
                          models=[LoggedModelInput(model_id)] if model_id else None)
        all_params = {"dataset": name, "dataset_path": dataset.get("root"), "dataset_format": dataset.get("format"),
                      "masks_from": report.get("masks_from"), "embedder_id": report.get("embedder_id"),
                      "base_model_id": report.get("base_model_id"), **(params or {})}
        now = int(time.time() * 1000)
        ds_name, ds_digest = (ds_input.dataset.name, ds_input.dataset.digest) if ds_input else (None, None)
        metrics = [Metric(k, float(report[k]), now, 0, model_id=model_id, dataset_name=ds_name,
                          dataset_digest=ds_digest)
                   for k in METRICS if isinstance(report.get(k), (int, float))]
        metrics += [Metric(k, float(report[k]), now, 0) for k in COUNTS if isinstance(report.get(k), (int, float))]
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(k, redact_text(v)[:6000]) for k, v in all_params.items() if v is not None])
        rows = per_class_rows(report)
        client.log_table(run_id, {"class": [r["name"] for r in rows], "label": [r["class"] for r in rows],
                                  "iou": [r["iou"] for r in rows], "gt_pixels": [r["pixels"] for r in rows]},
                         TABLE_FILE)
        if confusion is not None:
            with tempfile.TemporaryDirectory() as tmp:
                client.log_artifact(run_id, str(confusion_png(confusion, Path(tmp) / CONFUSION_FILE)))
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_model_version_tag(ctx.model_name, str(int(version)), TAG_LATEST_RUN, run_id)
    if isinstance(report.get("miou"), (int, float)):
        client.set_model_version_tag(ctx.model_name, str(int(version)), TAG_LATEST_MIOU, f"{report['miou']:.4f}")
    refresh_quality(ctx, version)  # the version's description shows the latest quality
    logger.info("evaluation of version %s recorded as MLflow run %s (experiment %s)", version, run_id, EVAL_EXPERIMENT)
    return {"run_id": run_id, "experiment_id": exp_id, "experiment": EVAL_EXPERIMENT,
            "run_name": run.info.run_name, "version": int(version), "model_id": model_id}


def _summary(run) -> dict:
    tags, metrics = run.data.tags, run.data.metrics
    at = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.timezone.utc).isoformat(timespec="seconds")
    out = {"version": int(tags[RUN_VERSION]), "run_id": run.info.run_id, "dataset": tags.get(RUN_DATASET),
           "source": tags.get(RUN_SOURCE), "at": at, "masks_from": run.data.params.get("masks_from"),
           "eval_set": tags.get(RUN_SET) or f"name:{tags.get(RUN_DATASET)}",  # older runs: by name only
           "dataset_path": run.data.params.get("dataset_path")}
    out.update({k: metrics.get(k) for k in METRICS})
    out.update({k: int(metrics[k]) if k in metrics else None for k in COUNTS})
    return out


def eval_runs(ctx: RegistryContext, version: Optional[int] = None) -> list[dict]:
    """Finished evaluation runs of the model (of one `version` when given), newest first:
    [{'version', 'run_id', 'dataset', 'source', 'at', 'masks_from', 'miou', ..., 'images', ...}].
    [] when nothing was ever evaluated (nothing is created)."""
    exp = ctx.client.get_experiment_by_name(EVAL_EXPERIMENT)
    if exp is None:
        return []
    query = f"tags.`{RUN_MODEL}` = '{ctx.model_name}' and attributes.status = 'FINISHED'"
    if version is not None:
        query += f" and tags.`{RUN_VERSION}` = '{int(version)}'"
    runs = ctx.client.search_runs([exp.experiment_id], query, max_results=MAX_RUNS,
                                  order_by=["attributes.start_time DESC"])
    return [_summary(r) for r in runs if r.data.tags.get(RUN_VERSION, "").isdigit()]


def latest_quality(ctx: RegistryContext, runs: Optional[list[dict]] = None) -> dict[int, dict]:
    """{version: its newest evaluation run's summary (see `eval_runs`)}; versions never evaluated are absent."""
    out: dict[int, dict] = {}
    for r in eval_runs(ctx) if runs is None else runs:
        out.setdefault(r["version"], r)
    return out


def by_eval_set(runs: list[dict]) -> list[dict]:
    """Evaluation runs grouped by evaluation set (see `eval_set_id`): [{'eval_set', 'dataset',
    'path', 'versions': {version: its newest run on the set}}], the set the most versions were
    evaluated on first (ties: the most recently used). `runs` newest first, as `eval_runs` gives."""
    groups: dict[str, dict] = {}
    for r in runs:
        g = groups.setdefault(r["eval_set"], {"eval_set": r["eval_set"], "dataset": r["dataset"],
                                              "path": r.get("dataset_path"), "versions": {}})
        g["versions"].setdefault(r["version"], r)
    order = list(groups)  # first appearance = most recently used
    return sorted(groups.values(), key=lambda g: (-len(g["versions"]), order.index(g["eval_set"])))


def _points(group: dict) -> list[dict]:
    return [{k: r[k] for k in ("version", "miou", "segment_accuracy", "pixel_accuracy", "at", "run_id")}
            for _, r in sorted(group["versions"].items())]


def quality_history(ctx: RegistryContext, runs: Optional[list[dict]] = None) -> dict:
    """Quality across versions on one evaluation set (`by_eval_set`'s first: the set the most
    versions were evaluated on), per version, oldest first, its newest run on it; figures from
    other sets are never mixed in, they are listed apart under 'sets'.
    Returns {'dataset', 'eval_set', 'path', 'points': [{'version', 'miou', 'segment_accuracy', 'at',
    'run_id'}], 'sets': [{'eval_set', 'dataset', 'path', 'points'}, ...] (every set, the same first)}."""
    sets = by_eval_set(eval_runs(ctx) if runs is None else runs)
    if not sets:
        return {"dataset": None, "eval_set": None, "path": None, "points": [], "sets": []}
    listed = [{"eval_set": g["eval_set"], "dataset": g["dataset"], "path": g["path"], "points": _points(g)}
              for g in sets]
    return {**listed[0], "sets": listed}


def set_label(dataset: Optional[str], eval_set: Optional[str]) -> str:
    """'holdout [set 3fa2c1]' (older runs, known by name only: 'holdout')."""
    if not eval_set or eval_set.startswith("name:"):
        return str(dataset)
    return f"{dataset} [set {eval_set[:6]}]"


def other_sets_lines(history: dict, command_versions: Optional[list[int]] = None) -> list[str]:
    """Lines about the evaluation sets other than the shown one, and how to compare releases on
    one set; [] when every evaluation used one set."""
    if len(history.get("sets") or []) < 2:
        return []
    main = history["sets"][0]
    lines = [f"evaluations use {len(history['sets'])} different sets; figures above are on "
             f"{set_label(main['dataset'], main['eval_set'])} only:"]
    for g in history["sets"][1:]:
        lines.append(f"  also on {set_label(g['dataset'], g['eval_set'])}: " + ", ".join(
            f"version {p['version']} mIoU {_fig(p['miou'])}" for p in g["points"]))
    missing = sorted({p["version"] for g in history["sets"][1:] for p in g["points"]}
                     - {p["version"] for p in main["points"]})
    versions = " ".join(map(str, (command_versions or sorted({p["version"] for p in main["points"]}) + missing)[:4]))
    hint = f"compare on one set: `knnclip releases compare {versions} --tasks FILE`"
    if missing and main.get("path"):
        hint += f", or `knnclip eval {main['path']} --release V` for version(s) {', '.join(map(str, missing))}"
    return lines + [hint]


def _fig(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_quality(q: Optional[dict], long: bool = False) -> str:
    """One line of a quality summary (see `eval_runs`): 'mIoU 0.7321, seg acc 0.9100 on ade20k
    (2026-11-28)'; with `long` also the time, image count and run id; 'not evaluated' for None."""
    if not q:
        return "not evaluated"
    when = q["at"] if long else q["at"][:10]
    text = (f"mIoU {_fig(q['miou'])}, seg acc {_fig(q['segment_accuracy'])} on "
            f"{set_label(q['dataset'], q.get('eval_set'))} ({when}")
    return text + (f", {q['images']} images, run {q['run_id']})" if long else ")")


def history_lines(history: dict, mark: Optional[int] = None) -> list[str]:
    """Text lines of `quality_history`: a title and one line per version ('*' marks version `mark`)."""
    if not history["points"]:
        return []
    return [f"quality across versions on {set_label(history['dataset'], history.get('eval_set'))} "
            f"(newest evaluation of each):"] + [
        f"  {'*' if p['version'] == mark else ' '} version {p['version']:>4}: mIoU {_fig(p['miou'])}, "
        f"seg acc {_fig(p['segment_accuracy'])} ({p['at'][:10]})" for p in history["points"]] + other_sets_lines(history)
