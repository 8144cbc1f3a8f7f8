"""`knnclip releases history` and `releases rollback`: an alias's moves (those made outside
knnclip included), and a rollback that says what it will do before doing it."""
from __future__ import annotations

import argparse
import sys

from knnclip_core.cli.common import emit

from .aliases import check_aliases, plan_rollback, read_history
from .releases import rollback
from .store import RegistryContext


def move_line(e: dict) -> str:
    """One alias-history entry as a line."""
    def v(x):
        return "none" if x is None else str(x)
    line = f"{e.get('at', '?')}  {e.get('action', '?'):<14} {v(e.get('previous'))} -> {v(e.get('version'))}"
    if e.get("action") == "out-of-band":
        return line + f"  made outside knnclip; found by `{e.get('detected_by')}` ({e.get('detected_by_user')})"
    return line + f"  by {e.get('by', '?')}" + (f": {e['note']}" if e.get("note") else "")


def history_command(args: argparse.Namespace, ctx: RegistryContext) -> int:
    """Print the holder, rollback stack and moves (newest first) of args.alias."""
    check_aliases(ctx, [args.alias])
    hist = read_history(ctx, args.alias)
    res = {"alias": args.alias, "holder": ctx.aliases().get(args.alias), "stack": hist["stack"],
           "log": list(reversed(hist["log"]))}
    lines = [f"alias {args.alias} -> version {res['holder']}; rollback stack "
             + (" -> ".join(map(str, hist["stack"])) or "-")]
    emit(args, res, "\n".join(lines + [f"  {move_line(e)}" for e in res["log"]]))
    return 0


def interactive() -> bool:
    """True when a person can answer a question (stdin and stdout are a terminal)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def rollback_command(args: argparse.Namespace, ctx: RegistryContext) -> int:
    """Explain the rollback of args.alias (holder, target, why, moves made outside knnclip),
    ask on a terminal unless args.yes, then roll back. Returns 1 when declined."""
    plan = plan_rollback(ctx, args.alias)
    how = plan["how_current"]
    text = [f"rollback of alias {plan['alias']!r} of {ctx.model_name!r}:",
            f"  now:    version {plan['current']}" + (f" ({move_line(how)})" if how else ""),
            f"  target: version {plan['target']}",
            f"  why:    {plan['why']}",
            f"  rollback stack (oldest first): {' -> '.join(map(str, plan['stack']))}"]
    text += [f"  warning: alias moved outside knnclip, {e['previous']} -> {e['version']}, without the gate; recorded "
             f"in the history now" for e in plan["out_of_band"]]
    out = sys.stderr if args.json else sys.stdout
    out.write("\n".join(text) + "\n")
    out.flush()
    if not args.yes and interactive():
        answer = input(f"Roll {plan['alias']!r} back from version {plan['current']} to version {plan['target']}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            emit(args, {**plan, "done": False}, "nothing done")
            return 1
    res = rollback(ctx, alias=args.alias, expect=(plan["current"], plan["target"]))
    emit(args, {**res, "plan": plan, "done": True},
         f"alias {res['alias']} rolled back to version {res['version']} (was {res['previous']})")
    return 0
