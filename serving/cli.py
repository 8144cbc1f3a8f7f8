"""Worker commands: `knnclip segment`, `knnclip eval`, `knnclip serve` (they load releases
from the MLflow registry, hence they live outside knnclip_core)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Optional, TextIO

from knnclip_core.cli.common import add_json_flag, emit, workspace_from_args

from registry.errors import registry_sentences

logger = logging.getLogger(__name__)

DEFAULT_RELEASE = "production"


def _params(settings, args):
    from knnclip_core.segment.segmenter import SegmentParams

    params = SegmentParams.from_settings(settings)
    if getattr(args, "proposals", None):
        params.proposals = args.proposals
    return params


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment images with a release; write label map PNG, overlay PNG and JSON per image."""
    from knnclip_core.segment.render import label_map_image, read_image, result_overlay

    from .worker_source import load_segmenter

    settings, _ = workspace_from_args(args)
    segmenter, loaded = load_segmenter(args.release, settings, _params(settings, args))
    from knnclip_core.labelling.capture import store_from_settings

    capture = store_from_settings(settings, force=args.capture)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, lines = [], []
    for path in map(Path, args.images):
        image = read_image(path, settings.worker.max_pixels)
        res = segmenter.segment(image, extra_classes=args.classes or ())
        stem = path.stem
        label_png, overlay_png, json_path = (out_dir / f"{stem}.labels.png", out_dir / f"{stem}.overlay.png",
                                             out_dir / f"{stem}.json")
        label_map_image(res.label_map, len(res.classes)).save(label_png)
        result_overlay(image, res).save(overlay_png)  # unknown segments hatched grey, in the legend
        body = res.to_json(segment_ids=getattr(segmenter.memory, "segment_ids", None))
        body.update({"image": str(path), "release": {"version": loaded.version, "alias": loaded.alias}})
        if capture is not None:
            body["capture"] = capture.offer(image, res, body["release"], "cli", name=str(path),
                                            segment_ids=getattr(segmenter.memory, "segment_ids", None))
        json_path.write_text(json.dumps(body, indent=1))
        found = sorted({s["class"] for s in body["segments"]})
        results.append({"image": str(path), "label_map": str(label_png), "overlay": str(overlay_png),
                        "json": str(json_path), "segments": len(body["segments"]), "classes_found": found})
        lines.append(f"{path}: {len(body['segments'])} segments ({', '.join(found)}) -> {json_path}")
    emit(args, {"release": loaded.describe(), "images": results},
         f"release {loaded.version} ({loaded.alias or 'by version'})\n" + "\n".join(lines))
    return 0


@registry_sentences
def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a release on a labelled dataset: mIoU, pixel and segment accuracy (and PQ), per-class
    IoU; recorded as an MLflow run linked to the version (registry.eval_runs) unless --no-record."""
    from knnclip_core.cli.ingest_cmd import reader_kwargs
    from knnclip_core.readers import open_reader
    from knnclip_core.evaluation.eval_report import per_class_lines
    from knnclip_core.evaluation.evaluate import evaluate_with_confusion, samples_from_reader

    from .worker_source import load_segmenter

    settings, _ = workspace_from_args(args)
    reader = open_reader(args.path, args.format, **reader_kwargs(args))
    params = _params(settings, args)
    segmenter, loaded = load_segmenter(args.release, settings, params)
    panoptic = reader.format == "coco-panoptic"
    if panoptic:
        segmenter.thing_classes |= {c.name.lower() for c in reader.classes if c.is_thing}
    classes = [c.name for c in reader.classes]
    report, confusion = evaluate_with_confusion(
        segmenter, samples_from_reader(reader, settings.worker.max_pixels, args.limit), classes,
        masks_from=args.masks_from, panoptic=panoptic)
    report["release"] = loaded.describe()
    report["dataset"] = reader.describe()
    seg_acc = report["segment_accuracy"]
    report["confidence_threshold"] = {"value": segmenter.threshold, "source": segmenter.threshold_source}
    lines = [f"release {loaded.version} (T {segmenter.threshold:.4g}, {segmenter.threshold_source}): "
             f"{report['images']} images, mIoU {report['miou']:.4f}, "
             f"pixel accuracy {report['pixel_accuracy']:.4f}, segment accuracy "
             f"{'n/a' if seg_acc is None else f'{seg_acc:.4f}'}" + (f", PQ {report['pq']:.4f}" if panoptic else "")]
    lines += per_class_lines(report, all_classes=args.all_classes)
    if not args.no_record:
        from registry.eval_runs import record_eval
        from registry.store import open_registry

        run_params = {"k": params.k, "T": params.temperature, "confidence_threshold": segmenter.threshold,
                      "threshold_source": segmenter.threshold_source,
                      "fusion_lambda": params.fusion_lambda, "limit": args.limit,
                      "proposals": params.proposals if args.masks_from == "proposals" else None,
                      "release_ref": args.release}
        rec = record_eval(open_registry(settings), int(loaded.version), report, confusion, report["dataset"],
                          run_params, source="cli")
        report["mlflow_run"] = rec
        lines.append(f"recorded as MLflow run {rec['run_id']} (experiment {rec['experiment']}), "
                     f"linked to {settings.publish.model_name} version {loaded.version}")
    emit(args, report, "\n".join(lines))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the release an alias points at over HTTP, following the alias (hot reload)."""
    from knnclip_core.serving.http_server import serve
    from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
    from knnclip_core.serving.service import create_app

    settings, _ = workspace_from_args(args)
    params = _params(settings, args)
    if args.snapshot:
        source = LocalSnapshotSource(args.snapshot, params, EmbedderCache(settings.embed.device, settings))
    else:
        from .worker_source import RegistryReleaseSource

        release = args.release or f"models:/{settings.publish.model_name}@production"
        source = RegistryReleaseSource(release, settings, params)
    following = str(args.snapshot) if args.snapshot else release
    app = create_app(source, settings, poll_seconds=args.poll_seconds)
    watcher = app.state.watcher
    watcher.on_change = announce_releases(watcher.on_change, sys.stderr)
    print(serve_banner(args.host, args.port, following, watcher.poll_seconds, settings), file=sys.stderr, flush=True)
    serve(app, args.host, args.port, settings.worker.header_timeout_s, "info" if args.verbose else "warning")
    return 0


def serve_banner(host: str, port: int, following: str, poll_seconds: float, settings) -> str:
    """The lines `knnclip serve` prints at start-up: where, what it follows, token and metrics."""
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    token = settings.worker_token is not None
    metrics = ("public (no token, for scrapers)" if settings.worker.metrics_public
               else "behind the token" if token else "open like every path")
    return (f"knnclip serve: listening on {url} (API docs {url}/docs)\n"
            f"  following {following}, checked every {poll_seconds:g} s; the release served is printed once loaded\n"
            f"  token: {'on (Authorization: Bearer <worker_token>)' if token else 'off: anyone who reaches the port may call it'}"
            f"; /metrics: {metrics}")


def release_line(release) -> str:
    """'model knnclip-memory version 3 (alias production), embedder <id>, base model <id>, 40 classes'."""
    uri = str(release.uri or "")
    model = uri.split("/")[1] if uri.startswith("models:/") else uri
    return (f"model {model} version {release.version} (alias {release.alias or 'none'}), embedder "
            f"{release.embedder_id}, base model {release.base_model_id}, {release.vocabulary_size} classes, "
            f"T {release.segmenter.threshold:.4g} ({release.segmenter.threshold_source})")


def announce_releases(inner: Optional[Callable], stream: TextIO) -> Callable:
    """A watcher `on_change` hook that calls `inner` (the metrics hook) and prints one line per
    release swapped in and one per release refused (a failure repeated by later polls once)."""
    state: dict = {"serving": None, "error": None}

    def on_change(event: str, release, error: Optional[str]) -> None:
        if inner is not None:
            inner(event, release, error)
        if event == "swapped" and release is not None:
            was = f" (was version {state['serving']})" if state["serving"] is not None else ""
            state.update(serving=release.version, error=None)
            line = f"serve: now serving {release_line(release)}{was}"
        elif event == "failed" and error != state["error"]:
            state["error"] = error
            kept = f"still serving version {state['serving']}" if state["serving"] is not None else "no release served yet"
            line = f"serve: release refused, {kept}: {error}"
        else:
            return
        print(line, file=stream, flush=True)

    return on_change


def register(sub) -> None:
    """Add segment, eval and serve to the `knnclip` parser."""
    from knnclip_core.cli.ingest_cmd import add_reader_flags

    p = sub.add_parser("segment", help="segment images with a registry release (label map, overlay, JSON)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--release", default=DEFAULT_RELEASE, help="alias, version, or models:/name@alias (default production)")
    p.add_argument("--out", default="segment-out", help="output folder (default ./segment-out)")
    p.add_argument("--classes", nargs="+", metavar="EXTRA", help="extra class names (needs an open-vocabulary base model, worker.base_model)")
    p.add_argument("--proposals", help="proposal generator: slic | grid | sam | mask2former (default from settings)")
    p.add_argument("--capture", action="store_true",
                   help="record doubtful segments for labelling (as capture.enabled does; see `knnclip label`)")
    add_json_flag(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("eval", help="evaluate a release on labelled data (mIoU, accuracy, PQ)")
    add_reader_flags(p)
    p.add_argument("--release", default=DEFAULT_RELEASE, help="alias, version, or models:/name@alias (default production)")
    p.add_argument("--masks-from", choices=("gt", "proposals"), default="gt",
                   help="classify the ground-truth masks (default) or the worker's own proposals")
    p.add_argument("--proposals", help="proposal generator with --masks-from proposals")
    p.add_argument("--limit", type=int, help="evaluate at most N images")
    p.add_argument("--all-classes", action="store_true", help="list the IoU of every class (default: worst and best 10)")
    p.add_argument("--no-record", action="store_true", help="do not record the evaluation as an MLflow run")
    add_json_flag(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("serve", help="HTTP segmentation worker following a registry alias")
    p.add_argument("--release", help="release to follow (default models:/<model name>@production)")
    p.add_argument("--snapshot", help="serve a local snapshot folder (or symlink to one) instead of the registry")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--poll-seconds", type=float, default=None, help="alias polling interval (default from settings)")
    p.add_argument("--proposals", help="proposal generator (default from settings)")
    p.set_defaults(func=cmd_serve)
