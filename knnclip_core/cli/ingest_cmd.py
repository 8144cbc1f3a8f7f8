"""`knnclip ingest`: read, validate and catalogue a labelled dataset."""
from __future__ import annotations

import argparse

from ..readers import FORMATS
from .common import add_json_flag, emit, workspace_from_args


def add_reader_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reads a dataset (ingest, eval)."""
    p.add_argument("path", help="dataset folder, or COCO JSON file")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--split", default="validation", help="ade20k split: training | validation")
    p.add_argument("--dataset", help="dataset name in the catalog (default: from the path)")
    p.add_argument("--images", help="images folder (COCO; semantic-png, default PATH/images)")
    p.add_argument("--masks", help="masks folder (semantic-png, default PATH/masks; panoptic PNGs)")
    p.add_argument("--classes", help="classes file, line i names value i (semantic-png)")
    p.add_argument("--ignore", type=int, action="append", default=[], metavar="VALUE",
                   help="mask value to ignore (repeatable)")


def reader_kwargs(args: argparse.Namespace) -> dict:
    return dict(split=args.split, dataset=args.dataset, images=args.images, masks=args.masks,
                classes=args.classes, ignore=args.ignore)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ..overrides import settings_asked
    from ..stage_api import ingest

    settings, ws = workspace_from_args(args)
    settings = settings_asked(settings, "ingest", ingest={"min_area": args.min_area})
    report = ingest(settings, ws, path=args.path, format=args.format, progress=not args.json, **reader_kwargs(args))
    emit(args, report.to_json(), report.text())
    return 0


def register(sub) -> None:
    p = sub.add_parser("ingest", help="read, validate and catalogue labelled segmentation data")
    add_reader_flags(p)
    p.add_argument("--min-area", type=int, default=None, help="drop segments with fewer pixels (default 16)")
    add_json_flag(p)
    p.set_defaults(func=cmd_ingest)
