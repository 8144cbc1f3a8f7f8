"""`knnclip quarantine list|show`: what ingest set aside, with the file, row, reason code and message."""
from __future__ import annotations

import argparse

from ..errors import InputError
from ..workspace import Workspace
from .common import add_json_flag, emit, settings_from_args


def _url(args: argparse.Namespace) -> str:
    return Workspace.from_settings(settings_from_args(args)).catalog_url


def _list(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise InputError(f"--limit must be 0 or more, not {args.limit}.")
    from ..catalog.queries import quarantine_items  # sqlmodel: only when the command runs

    result = quarantine_items(_url(args), batch=args.batch, reason=args.reason, limit=args.limit)
    lines = [f"{q['id']:>6}  {q['batch']}  {q['reason']:<20} {q['item']}" for q in result["items"]]
    shown = len(result["items"])
    if result["total"] == 0:
        lines = ["no quarantined items" + (" matching the filters" if args.batch or args.reason else "")]
    elif shown < result["total"]:
        lines.append(f"({shown} of {result['total']} shown; raise --limit to see more)")
    emit(args, result, "\n".join(lines))
    return 0


def _show(args: argparse.Namespace) -> int:
    from ..catalog.queries import quarantine_item

    item = quarantine_item(_url(args), args.id)
    if item is None:
        raise InputError(f"there is no quarantined item with id {args.id}; `knnclip quarantine list` shows the ids.")
    lines = [f"quarantine item {item['id']}",
             f"  file:    {item['file']}",
             f"  row:     {item['segment'] or '(the whole image)'}",
             f"  reason:  {item['reason']}",
             f"  message: {item['message']}",
             f"  batch:   {item['batch']} (dataset {item['dataset'] or '-'}, root {item['root'] or '-'})",
             f"  when:    {item['created']}"]
    emit(args, item, "\n".join(lines))
    return 0


def register(sub) -> None:
    """Add `quarantine list|show` to the `knnclip` parser."""
    p = sub.add_parser("quarantine", help="list and show what ingest quarantined (file, row, reason, message)")
    qsub = p.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    ls = qsub.add_parser("list", help="quarantined items, oldest first")
    ls.add_argument("--batch", help="only this ingest batch id")
    ls.add_argument("--reason", help="only this reason code (e.g. truncated_image)")
    ls.add_argument("--limit", type=int, default=50, help="at most this many items (default 50)")
    add_json_flag(ls)
    ls.set_defaults(func=_list)
    show = qsub.add_parser("show", help="one item: file, row, reason code and message")
    show.add_argument("id", type=int, help="item id (from `knnclip quarantine list`)")
    add_json_flag(show)
    show.set_defaults(func=_show)
