"""Worker commands: `knnclip segment`, `knnclip eval`, `knnclip serve` (they load releases
from the MLflow registry, hence they live outside knnclip_core)."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from knnclip_core.cli.common import add_json_flag, emit, workspace_from_args

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
    from knnclip_core.segment.render import draw_legend, label_map_image, overlay_image, read_image

    from .worker_source import load_segmenter

    settings, _ = workspace_from_args(args)
    segmenter, loaded = load_segmenter(args.release, settings, _params(settings, args))
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
        draw_legend(overlay_image(image, res.label_map, len(res.classes)), res.label_map,
                    list(res.classes)).save(overlay_png)
        body = res.to_json(segment_ids=getattr(segmenter.memory, "segment_ids", None))
        body.update({"image": str(path), "release": {"version": loaded.version, "alias": loaded.alias}})
        json_path.write_text(json.dumps(body, indent=1))
        found = sorted({s["class"] for s in body["segments"]})
        results.append({"image": str(path), "label_map": str(label_png), "overlay": str(overlay_png),
                        "json": str(json_path), "segments": len(body["segments"]), "classes_found": found})
        lines.append(f"{path}: {len(body['segments'])} segments ({', '.join(found)}) -> {json_path}")
    emit(args, {"release": loaded.describe(), "images": results},
         f"release {loaded.version} ({loaded.alias or 'by version'})\n" + "\n".join(lines))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a release on a labelled dataset: mIoU, pixel and segment accuracy (and PQ)."""
    from knnclip_core.cli.ingest_cmd import reader_kwargs
    from knnclip_core.readers import open_reader
    from knnclip_core.segment.evaluate import evaluate, samples_from_reader

    from .worker_source import load_segmenter

    settings, _ = workspace_from_args(args)
    reader = open_reader(args.path, args.format, **reader_kwargs(args))
    segmenter, loaded = load_segmenter(args.release, settings, _params(settings, args))
    panoptic = reader.format == "coco-panoptic"
    if panoptic:
        segmenter.thing_classes |= {c.name.lower() for c in reader.classes if c.is_thing}
    classes = [c.name for c in reader.classes]
    report = evaluate(segmenter, samples_from_reader(reader, settings.worker.max_pixels, args.limit), classes,
                      masks_from=args.masks_from, panoptic=panoptic)
    report["release"] = loaded.describe()
    report["dataset"] = reader.describe()
    seg_acc = report["segment_accuracy"]
    human = (f"release {loaded.version}: {report['images']} images, mIoU {report['miou']:.4f}, "
             f"pixel accuracy {report['pixel_accuracy']:.4f}, segment accuracy "
             f"{'n/a' if seg_acc is None else f'{seg_acc:.4f}'}"
             + (f", PQ {report['pq']:.4f}" if panoptic else ""))
    emit(args, report, human)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the release an alias points at over HTTP, following the alias (hot reload)."""
    import uvicorn

    from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
    from knnclip_core.segment.service import create_app

    settings, _ = workspace_from_args(args)
    params = _params(settings, args)
    if args.snapshot:
        source = LocalSnapshotSource(args.snapshot, params, EmbedderCache(settings.embed.device, settings))
    else:
        from .worker_source import RegistryReleaseSource

        release = args.release or f"models:/{settings.publish.model_name}@production"
        source = RegistryReleaseSource(release, settings, params)
    app = create_app(source, settings, poll_seconds=args.poll_seconds)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


def register(sub) -> None:
    """Add segment, eval and serve to the `knnclip` parser."""
    from knnclip_core.cli.ingest_cmd import add_reader_flags

    p = sub.add_parser("segment", help="segment images with a registry release (label map, overlay, JSON)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--release", default=DEFAULT_RELEASE, help="alias, version, or models:/name@alias (default production)")
    p.add_argument("--out", default="segment-out", help="output folder (default ./segment-out)")
    p.add_argument("--classes", nargs="+", metavar="EXTRA", help="extra class names (needs an open-vocabulary base model, worker.base_model)")
    p.add_argument("--proposals", help="proposal generator: slic | grid | sam (default from settings)")
    add_json_flag(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("eval", help="evaluate a release on labelled data (mIoU, accuracy, PQ)")
    add_reader_flags(p)
    p.add_argument("--release", default=DEFAULT_RELEASE, help="alias, version, or models:/name@alias (default production)")
    p.add_argument("--masks-from", choices=("gt", "proposals"), default="gt",
                   help="classify the ground-truth masks (default) or the worker's own proposals")
    p.add_argument("--proposals", help="proposal generator with --masks-from proposals")
    p.add_argument("--limit", type=int, help="evaluate at most N images")
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
