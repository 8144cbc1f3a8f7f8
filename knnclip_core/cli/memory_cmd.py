"""`knnclip curate`, `knnclip memory stats|history`, `knnclip forget`, `knnclip unforget`."""
from __future__ import annotations

import argparse

from .common import add_json_flag, emit, workspace_from_args


def _curate(args: argparse.Namespace) -> int:
    from ..memory.curate import curation_settings
    from ..stage_api import curate

    settings, ws = workspace_from_args(args)
    settings = curation_settings(settings, budget_vectors=args.budget_vectors, budget_mb=args.budget_mb,
                                 dedup_threshold=args.dedup_threshold, strategy=args.strategy,
                                 class_floor=args.class_floor, class_ceiling=args.class_ceiling, seed=args.seed,
                                 lock_timeout_s=args.lock_timeout)  # once, here: curate reads only settings
    result = curate(settings, ws, backbone=args.backbone, dedup_method=args.dedup_method)
    emit(args, result.to_json(), result.text())
    return 0


def _stats(args: argparse.Namespace) -> int:
    from ..memory.stats import memory_stats

    _, ws = workspace_from_args(args)
    result = memory_stats(ws, args.backbone)
    lines = []
    for m in result["memories"]:
        c = m["counts"]
        lines.append(f"{m['embedder_id']} ({m['table']}): {m['rows']} rows, {m['classes']} classes, kept {c['kept']} "
                     f"({m['kept_index_bytes'] / 1e6:.2f} MB index), pending {c['pending']}, duplicates "
                     f"{m['duplicates']}, conflicts {m['conflicts']}, over budget {c['over_budget']}, forgotten "
                     f"{c['forgotten']}; version {m['lance_version']}, latest tag {m['latest_tag']}")
        for cls, d in m["per_class"].items():
            lines.append(f"  {cls}: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    emit(args, result, "\n".join(lines) or "no memory yet; run `knnclip embed`")
    return 0


def _history(args: argparse.Namespace) -> int:
    from ..memory.stats import memory_history

    _, ws = workspace_from_args(args)
    result = memory_history(ws)
    lines = [f"run {r['run_id']} {r['status']} {r['started']} {r['embedder_id']}: tag {r['lance_tag']} "
             f"(version {r['lance_version']}), strategy {r['params'].get('strategy')}, budget "
             f"{r['params'].get('budget_vectors')}, counts {r['counts']}" for r in result["runs"]]
    lines += [f"forget rule {f['id']} {'active' if f['active'] else 'inactive'}: {f['kind']}={f['value']} "
              f"{f['reason']}" for f in result["forget_rules"]]
    emit(args, result, "\n".join(lines) or "no curation runs yet")
    return 0


def _forget(args: argparse.Namespace) -> int:
    from ..memory.forget import forget

    settings, ws = workspace_from_args(args)
    result = forget(settings, ws, dataset=args.dataset, batch=args.batch, image_sha=args.image_sha,
                    reason=args.reason or "", allow_unknown=args.allow_unknown)
    emit(args, result, f"forget rule {result['rule_id']} ({result['kind']}={result['value']}): "
                       f"{result['forgotten']} rows forgotten in {len(result['tables'])} memories\n"
                       f"note: {result['note']}")
    return 0


def _unforget(args: argparse.Namespace) -> int:
    from ..memory.forget import unforget

    settings, ws = workspace_from_args(args)
    result = unforget(settings, ws, dataset=args.dataset, batch=args.batch, image_sha=args.image_sha,
                      rule_id=args.rule)
    emit(args, result, f"deactivated rules {result['deactivated']}: {result['rows_to_reconsider']} rows "
                       f"come back at the next `knnclip curate`")
    return 0


def _targets(p: argparse.ArgumentParser, with_rule: bool = False) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--dataset", help="dataset name (the memory's `dataset` column)")
    g.add_argument("--batch", help="ingest batch id")
    g.add_argument("--image-sha", dest="image_sha", help="sha256 of one image")
    if with_rule:
        g.add_argument("--rule", type=int, help="forget rule id (see `knnclip memory history`)")


def register(sub) -> None:
    """Add curate, memory (stats, history), forget and unforget to the `knnclip` parser."""
    p = sub.add_parser("curate", help="deduplicate, check labels and apply the budget to a memory")
    p.add_argument("--backbone", help="backbone name or embedder id (default: the only memory)")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--budget-vectors", type=int, help="keep at most N vectors")
    b.add_argument("--budget-mb", type=float, help="keep the published Flat index under M MB (10^6 bytes)")
    p.add_argument("--dedup-threshold", type=float, help="cosine at or above which segments are near-duplicates")
    p.add_argument("--strategy", help="budget strategy: balanced | diversity | random")
    p.add_argument("--class-floor", type=int, help="minimum vectors per class when the budget allows")
    p.add_argument("--class-ceiling", type=int, help="maximum vectors per class")
    p.add_argument("--seed", type=int, help="seed of the randomised choices")
    p.add_argument("--dedup-method", choices=["auto", "exact", "ivf"], help="near-duplicate search")
    p.add_argument("--lock-timeout", type=float, help="seconds to wait for another run on this workspace")
    add_json_flag(p)
    p.set_defaults(func=_curate)

    m = sub.add_parser("memory", help="what the memories hold, and their curation history")
    msub = m.add_subparsers(dest="memory_command", metavar="SUBCOMMAND", required=True)
    s = msub.add_parser("stats", help="per-class counts by state, bytes, duplicates and conflicts")
    s.add_argument("--backbone", help="backbone name or embedder id (default: every memory)")
    add_json_flag(s)
    s.set_defaults(func=_stats)
    h = msub.add_parser("history", help="curation runs (versions, tags, params) and forget rules")
    add_json_flag(h)
    h.set_defaults(func=_history)

    f = sub.add_parser("forget", help="remove a dataset, batch or image from every memory, and keep it out")
    _targets(f)
    f.add_argument("--reason", help="why (recorded with the rule)")
    f.add_argument("--allow-unknown", action="store_true",
                   help="record the rule even when neither the catalog nor any memory knows the target")
    add_json_flag(f)
    f.set_defaults(func=_forget)

    u = sub.add_parser("unforget", help="deactivate a forget rule; the next curate reconsiders its rows")
    _targets(u, with_rule=True)
    add_json_flag(u)
    u.set_defaults(func=_unforget)
