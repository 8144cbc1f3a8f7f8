"""`knnclip label export|import|queue|status`: the labelling loop (see knnclip_core.labelling)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_json_flag, emit, settings_from_args, workspace_from_args

EXPORT_TOOLS = ("label-studio", "cvat", "coco")


def export_tasks(settings, tool: str, out: str | Path, limit: int | None = None, shape: str = "brush",
                 reasons=(), image_url: str = "/data/local-files/?d=") -> dict:
    """Export the capture store of `settings` as a `tool` task set into `out`; returns a summary."""
    from ..labelling.capture import store_from_settings
    from ..labelling.cvat import export_coco, export_cvat
    from ..labelling.label_studio import export_label_studio
    from ..labelling.tasks import tasks_from_store

    store = store_from_settings(settings, force=True)
    tasks = tasks_from_store(store, limit=limit, reasons=reasons)
    out = Path(out)
    if tool == "label-studio":
        return export_label_studio(tasks, out, shape=shape, image_url=image_url)
    return (export_cvat if tool == "cvat" else export_coco)(tasks, out)


def cmd_export(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    res = export_tasks(settings, args.to, args.out, args.limit, args.shape, tuple(args.reason or ()), args.image_url)
    emit(args, res, f"{res['tasks']} tasks ({res['proposals']} proposed masks, {res['vocabulary']} classes) "
                    f"for {res['tool']} in {res['out']}: {', '.join(res['files'])}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..labelling.importer import import_corrections

    settings, _ = workspace_from_args(args)
    res = import_corrections(settings, args.path, args.tool, images=args.images, dataset=args.dataset,
                             release=args.release, progress=not args.json)
    c = res["correction"]
    human = (f"batch {res['batch_id']}: corrections from {c['tool']} ({len(c['tasks'])} tasks, releases "
             f"{', '.join(c['releases']) or 'unknown'}) into dataset {res['dataset']!r}\n"
             f"  {res['images']} images, {res['segments']} segments over {res['classes']} classes "
             f"({res['new_segments']} new); quarantined {res['quarantined']}")
    human += "".join(f"\n    [{e['reason']}] {e['message']}" for e in res["examples"][:10])
    human += "\n  next: knnclip embed, knnclip curate, knnclip publish"
    emit(args, res, human)
    return 2 if res["quarantined"] else 0  # the valid ones went in all the same


def cmd_queue(args: argparse.Namespace) -> int:
    from ..labelling.capture import store_from_settings
    from ..labelling.curation_queue import queue_curation

    settings, ws = workspace_from_args(args)
    res = queue_curation(settings, ws, store_from_settings(settings, force=True), backbone=args.backbone,
                         limit=args.limit)
    emit(args, res, f"queued {res['queued']} captures ({res['label_conflict']} label conflicts, "
                    f"{res['near_duplicate']} near-duplicates) from {res['table']}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..labelling.capture import capture_dir, store_from_settings

    settings = settings_from_args(args)
    store = store_from_settings(settings, force=True)
    res = {"dir": str(capture_dir(settings)), "enabled": settings.capture.enabled, "captures": len(store.ids()),
           "bytes": store.bytes_used(), "quota_mb": settings.capture.quota_mb}
    emit(args, res, f"capture {'on' if res['enabled'] else 'off'}: {res['captures']} captures, "
                    f"{res['bytes'] / 1e6:.1f} of {res['quota_mb']} MB in {res['dir']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("label", help="the labelling loop: export captured segments, import corrected labels")
    ls = p.add_subparsers(dest="label_command", metavar="ACTION", required=True)
    a = ls.add_parser("export", help="write the captured segments as Label Studio, CVAT or COCO tasks")
    a.add_argument("out", help="output folder (new or empty)")
    a.add_argument("--to", required=True, choices=EXPORT_TOOLS)
    a.add_argument("--limit", type=int, help="at most N tasks (oldest captures first)")
    a.add_argument("--shape", choices=("brush", "polygon"), default="brush", help="Label Studio regions (default brush RLE)")
    a.add_argument("--reason", action="append", choices=("unknown", "low_confidence", "disagreement",
                                                         "label_conflict", "near_duplicate"),
                   help="only segments captured for this reason (repeatable)")
    a.add_argument("--image-url", default="/data/local-files/?d=", help="Label Studio: prefix of data.image")
    add_json_flag(a)
    a.set_defaults(func=cmd_export)
    a = ls.add_parser("import", help="ingest corrected annotations (validated and quarantined like any ingest)")
    a.add_argument("path", help="annotation file, or the export folder holding it")
    a.add_argument("--from", dest="tool", required=True, choices=EXPORT_TOOLS)
    a.add_argument("--images", help="images folder (default: beside the file)")
    a.add_argument("--dataset", help="dataset name in the catalog (default corrections)")
    a.add_argument("--release", help="release the labels correct (default: from the export's export.json)")
    add_json_flag(a)
    a.set_defaults(func=cmd_import)
    a = ls.add_parser("queue", help="queue the label conflicts and near-duplicates of the last curation")
    a.add_argument("--backbone", help="memory backbone (default: the configured one)")
    a.add_argument("--limit", type=int, default=200, help="at most N captures")
    add_json_flag(a)
    a.set_defaults(func=cmd_queue)
    a = ls.add_parser("status", help="the capture store: on or off, captures, disk used")
    add_json_flag(a)
    a.set_defaults(func=cmd_status)
