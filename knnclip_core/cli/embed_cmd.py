"""`knnclip backbones` (list configs/backbones.yaml) and `knnclip embed` (catalog -> memory)."""
from __future__ import annotations

import argparse

from .common import add_json_flag, emit, settings_from_args, workspace_from_args


def cmd_backbones(args: argparse.Namespace) -> int:
    from ..embedders import list_backbones

    settings = settings_from_args(args)
    rows = [dict(s.as_dict(), default=(s.name == settings.embed.backbone)) for s in list_backbones()]
    lines = [f"{'name':<24} {'family':<10} {'architecture':<24} {'weights':<28} input"]
    for r in rows:
        mark = " (default)" if r["default"] else ""
        size = r["input_size"] or (f"<= {r['max_side']}" if r["max_side"] else "native")
        lines.append(f"{r['name']:<24} {r['family']:<10} {r['architecture']:<24} {r['weights']:<28} {size}{mark}")
    emit(args, rows, "\n".join(lines))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from ..overrides import settings_asked
    from ..stage_api import embed

    settings, ws = workspace_from_args(args)
    settings = settings_asked(settings, "embed", embed={"backbone": args.backbone, "device": args.device,
                                                        "batch_size": args.batch_size, "num_workers": args.num_workers})
    result = embed(settings, ws, progress=not args.json)
    emit(args, result.to_json(), result.text())
    return 0


def register(sub) -> None:
    """Add `backbones` and `embed` to the `knnclip` parser."""
    p = sub.add_parser("backbones", help="list the backbones of configs/backbones.yaml")
    add_json_flag(p)
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("embed", help="embed every ingested segment not yet embedded with a backbone")
    p.add_argument("--backbone", help="backbone name (default: embed.backbone, `classic-v2`)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where the model runs (default: embed.device)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: embed.batch_size)")
    p.add_argument("--num-workers", type=int, help="DataLoader workers (default: embed.num_workers, auto; 0: none)")
    add_json_flag(p)
    p.set_defaults(func=cmd_embed)
