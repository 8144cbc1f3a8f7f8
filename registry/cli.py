"""`knnclip publish` and `knnclip releases list|show|diff|promote|rollback` (MLflow registry)."""
from __future__ import annotations

import argparse
import json

from knnclip_core.classnames import display_name
from knnclip_core.cli.common import add_json_flag, emit, workspace_from_args

from .errors import registry_sentences


def register(sub) -> None:
    """Add `publish` and `releases` to the `knnclip` parser."""
    p = sub.add_parser("publish", help="build a FAISS snapshot of the curated memory and register it in MLflow")
    p.add_argument("--backbone", help="backbone or embedder id whose memory to publish (default: the only memory, else embed.backbone's)")
    p.add_argument("--alias", help="alias the new version takes (default: publish.alias, 'staging'); '' for none")
    p.add_argument("--index", metavar="FACTORY", help="FAISS factory string overriding the automatic index choice")
    p.add_argument("--tag", help="LanceDB tag of the memory version to publish (default: latest curation)")
    add_json_flag(p)
    p.set_defaults(func=_publish)

    r = sub.add_parser("releases", help="list, show, diff, promote and roll back published memories")
    rs = r.add_subparsers(dest="releases_command", metavar="ACTION", required=True)
    a = rs.add_parser("list", help="every version with its aliases, classes, vectors, creation time")
    add_json_flag(a)
    a.set_defaults(func=_list)
    a = rs.add_parser("show", help="one release: tags, manifest, alias history")
    a.add_argument("version", help="version number or alias")
    add_json_flag(a)
    a.set_defaults(func=_show)
    a = rs.add_parser("diff", help="classes added/removed, per-class vector counts changed, embedder change")
    a.add_argument("a", help="version number or alias")
    a.add_argument("b", help="version number or alias")
    mode = a.add_mutually_exclusive_group()
    mode.add_argument("--summary", action="store_true", help=f"counts and the largest changes only (the default "
                                                              f"when the full diff is over {DIFF_SUMMARY_OVER} lines)")
    mode.add_argument("--full", action="store_true", help="every added, removed and changed class")
    add_json_flag(a)
    a.set_defaults(func=_diff)
    a = rs.add_parser("compare", help="evaluate releases on the same tasks: per task, each one's mIoU and the change")
    a.add_argument("versions", nargs="+", metavar="VERSION", help="two or more versions or aliases (changes vs the first)")
    a.add_argument("--tasks", help="tasks YAML (default: publish.gate_tasks)")
    a.add_argument("--protocol", choices=["own", "union", "both"], default="both",
                   help="each task with its own classes, with the release's whole vocabulary, or both")
    add_json_flag(a)
    a.set_defaults(func=_compare)
    a = rs.add_parser("promote", help="point an alias at a version, through the quality gate")
    a.add_argument("version", help="version number or alias")
    a.add_argument("--alias", default="production")
    a.add_argument("--force", action="store_true", help="promote even when the quality gate refuses")
    add_json_flag(a)
    a.set_defaults(func=_promote)
    a = rs.add_parser("rollback", help="give an alias back to the version that held it before (explains first; "
                                       "asks on a terminal)")
    a.add_argument("--alias", default="production")
    a.add_argument("--yes", action="store_true", help="do not ask for confirmation on a terminal")
    add_json_flag(a)
    a.set_defaults(func=_rollback)
    a = rs.add_parser("history", help="the moves of an alias, newest first, with those made outside knnclip")
    a.add_argument("--alias", default="production")
    add_json_flag(a)
    a.set_defaults(func=_history)


def _ctx(args: argparse.Namespace):
    from .store import open_registry

    settings, ws = workspace_from_args(args)
    return open_registry(settings, ws, command=f"releases {args.releases_command}")


@registry_sentences  # MLflow's errors: one sentence, exit 2
def _publish(args: argparse.Namespace) -> int:
    from knnclip_core.overrides import settings_asked

    from .stages import publish

    settings, ws = workspace_from_args(args)
    settings = settings_asked(settings, "publish", publish={"alias": args.alias, "index": args.index})
    result = publish(settings, ws, backbone=args.backbone, tag=args.tag)
    emit(args, result.to_json(), result.text())
    return 0


@registry_sentences
def _list(args: argparse.Namespace) -> int:
    from .eval_runs import format_quality, other_sets_lines, quality_history
    from .releases import list_releases

    ctx = _ctx(args)
    rows = list_releases(ctx)
    history = quality_history(ctx)
    where = f"quality on {format_set(history)}" if history["points"] else "quality"
    lines = [f"{'version':>7}  {'aliases':<20} {'classes':>7} {'vectors':>9}  {'index':<16} {'created':<25} {where}"]
    for r in rows:
        q = format_quality(r["quality"]) if r["quality"] or not r["quality_latest"] else "not evaluated on this set"
        lines.append(f"{r['version']:>7}  {','.join(r['aliases']) or '-':<20} {r['classes'] or 0:>7} "
                     f"{r['vectors'] or 0:>9}  {r['factory'] or '?':<16} {r['created']:<25} {q}")
    lines += other_sets_lines(history)
    emit(args, rows, "\n".join(lines) if rows else "no releases yet (run `knnclip publish`)")
    return 0


def format_set(history: dict) -> str:
    """The evaluation set of a quality history in words ('holdout [set 3fa2c1]')."""
    from .eval_runs import set_label

    return set_label(history["dataset"], history.get("eval_set"))


@registry_sentences
def _show(args: argparse.Namespace) -> int:
    from .cli_aliases import move_line
    from .eval_runs import format_quality, history_lines
    from knnclip_core.segment.calibrate import threshold_line

    from .releases import show_release

    res = show_release(_ctx(args), args.version)
    m = res["manifest"]
    human = (f"version {res['version']} ({', '.join(res['aliases']) or 'no alias'}), created {res['created']}\n"
             f"  {m['vectors']} vectors, {m['classes']} classes, dim {m['dim']}, index {m['factory']} "
             f"{m['search_params']}, recall@10 {m['recall_at_10']}, {m['bytes']['index']} bytes\n"
             f"  embedder {m['embedder_id']}\n  lineage {json.dumps(m.get('lineage', {}), default=str)}\n"
             f"  quality {format_quality(res['quality'], long=True)}")
    t = res["confidence_threshold"]
    human += (f"\n  confidence threshold T {t['value']:.4g} in force ({t['source']}); "
              f"release: {threshold_line(t['calibration'])}")
    human += "".join(f"\n  {line}" for line in history_lines(res["quality_history"], res["version"]))
    for alias, hist in res["alias_history"].items():
        human += f"\n  alias {alias}: " + " -> ".join(map(str, hist["stack"]))
        human += "".join(f"\n    {move_line(e)}" for e in reversed(hist["log"][-5:]))
    emit(args, res, human)
    return 0


@registry_sentences
def _diff(args: argparse.Namespace) -> int:
    from .releases import diff_releases

    d = diff_releases(_ctx(args), args.a, args.b)
    lines = [f"release {d['a']} -> {d['b']}: vectors {d['vectors']['a']} -> {d['vectors']['b']}, "
             f"classes {d['classes']['a']} -> {d['classes']['b']}; rows {d['rows']['added']} added, "
             f"{d['rows']['removed']} removed"]
    if d["embedder"]["changed"]:
        lines.append(f"  embedder changed: {d['embedder']['a']} -> {d['embedder']['b']}")
    detail = ([f"  + {display_name(n)} ({c} vectors)" for n, c in d["added"].items()]
              + [f"  - {display_name(n)} ({c} vectors)" for n, c in d["removed"].items()]
              + [f"  ~ {display_name(n)}: {c['a']} -> {c['b']} vectors" for n, c in d["changed"].items()])
    if args.summary or (not args.full and len(lines) + len(detail) > DIFF_SUMMARY_OVER):
        lines += diff_summary(d) + [f"  ({len(detail)} class lines; `--full` shows them all)"]
    else:
        lines += detail
    corr = d.get("corrections") or {}
    for b in corr.get("batches", []):
        lines.append(f"  corrections: batch {b['batch']} from {b['tool']}, {b.get('rows_added', '?')} rows added"
                     + (f", correcting release {', '.join(b['releases'])}" if b.get("releases") else ""))
    if corr.get("classes"):
        lines.append("  classes from corrections: " + ", ".join(
            f"{display_name(n)} ({c}{', new' if n in corr['new_classes'] else ''})" for n, c in corr["classes"].items()))
    emit(args, d, "\n".join(lines))
    return 0


DIFF_SUMMARY_OVER = 20  # a diff longer than this prints its summary unless --full
SUMMARY_ITEMS = 5


def diff_summary(d: dict) -> list[str]:
    """A release diff in a few lines: classes added, removed and changed, with the largest of each."""
    added = sorted(d["added"].items(), key=lambda t: (-t[1], t[0]))
    removed = sorted(d["removed"].items(), key=lambda t: (-t[1], t[0]))
    changed = sorted(d["changed"].items(), key=lambda t: (-abs(t[1]["b"] - t[1]["a"]), t[0]))
    out = []
    for sign, word, rows, text in (("+", "added", added, lambda n, c: f"{display_name(n)} ({c})"),
                                   ("-", "removed", removed, lambda n, c: f"{display_name(n)} ({c})"),
                                   ("~", "changed", changed, lambda n, c: f"{display_name(n)} {c['a']} -> {c['b']}")):
        if rows:
            more = f", ... {len(rows) - SUMMARY_ITEMS} more" if len(rows) > SUMMARY_ITEMS else ""
            out.append(f"  {sign} {len(rows)} classes {word}; largest: "
                       + ", ".join(text(n, c) for n, c in rows[:SUMMARY_ITEMS]) + more)
    return out


@registry_sentences
def _promote(args: argparse.Namespace) -> int:
    from .stages import promote

    settings, ws = workspace_from_args(args)
    result = promote(settings, ws, version=args.version, alias=args.alias, force=args.force)
    emit(args, result.to_json(), result.text())
    return 0


@registry_sentences
def _history(args: argparse.Namespace) -> int:
    from .cli_aliases import history_command

    return history_command(args, _ctx(args))


@registry_sentences
def _rollback(args: argparse.Namespace) -> int:
    from .cli_aliases import rollback_command

    return rollback_command(args, _ctx(args))


@registry_sentences
def _compare(args: argparse.Namespace) -> int:
    from knnclip_core.errors import InputError

    from .compare import compare_releases, format_comparison

    if len(args.versions) < 2:
        raise InputError("name at least two releases to compare")
    ctx = _ctx(args)
    tasks = args.tasks or ctx.settings.publish.gate_tasks
    if not tasks:
        raise InputError("no evaluation tasks: pass --tasks FILE or set publish.gate_tasks")
    protocols = ("own", "union") if args.protocol == "both" else (args.protocol,)
    res = compare_releases(ctx, args.versions, tasks, protocols)
    emit(args, res, format_comparison(res))
    return 0
