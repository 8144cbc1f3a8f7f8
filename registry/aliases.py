"""Alias moves with a durable history, since MLflow keeps none.

Each alias has a registered-model tag `knnclip.alias_history.<alias>` holding JSON
`{"stack": [versions that held it, oldest first], "log": [recent moves]}`. The tag lives
in the MLflow store itself, so the history survives restarts and works with any tracking
URI. `rollback` pops the current holder and gives the alias back to the one before. A move
is a read-modify-write of that tag, so moves of one model's aliases take a workspace lock
(`knnclip_core.locks.workspace_lock`: a PostgreSQL advisory lock when the catalog or
KNNCLIP_LOCK_URL is PostgreSQL, so machines sharing it serialise; else a file lock on this
machine). A history that cannot be read raises
AliasHistoryError and the alias is not moved, so it is never overwritten.

An alias moved outside knnclip (`set_registered_model_alias` in the MLflow UI or API)
bypasses the gate and this history. Every knnclip command that reads or moves aliases
compares each alias's holder with the history's last recorded holder (`check_aliases`);
on a difference it records an `out-of-band` entry (from, to, when and by which command it
was found), puts the new holder on the stack, and warns, before doing anything else.

A move writes its intent first (`pending`: the log entry and stack it is about to record),
then moves the alias, then records the move and clears the intent. A mover killed in
between leaves the intent, so the next command under the lock completes the record (the
alias did move) or drops it (it did not): its own move is never reported as out-of-band.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import re
from contextlib import contextmanager
from typing import Iterator, Optional

from mlflow.exceptions import MlflowException

from knnclip_core.errors import KnnclipError
from knnclip_core.locks import workspace_lock

from .store import RegistryContext, is_missing

logger = logging.getLogger(__name__)

HISTORY_TAG = "knnclip.alias_history.{alias}"
OUT_OF_BAND = "out-of-band"
MAX_STACK = 100
MAX_LOG = 50
LOCK_TIMEOUT_S = 30.0


class RollbackError(KnnclipError):
    """There is no earlier version to roll an alias back to."""


class AliasHistoryError(KnnclipError):
    """The recorded history of an alias cannot be read (so the alias must not be moved)."""


def read_history(ctx: RegistryContext, alias: str) -> dict:
    """The recorded history of `alias`: {'stack': [int], 'log': [dict]} (empty when the model
    or the tag does not exist yet). Raises AliasHistoryError when the store cannot be read
    or the tag is not a history."""
    try:
        rm = ctx.client.get_registered_model(ctx.model_name)
    except MlflowException as exc:
        if is_missing(exc):
            return {"stack": [], "log": []}
        raise AliasHistoryError(f"the history of alias {alias!r} of {ctx.model_name!r} cannot be read from "
                                f"{ctx.tracking_uri} ({exc.error_code}), so the alias is left where it is") from exc
    return _parse_history(ctx, alias, (rm.tags or {}).get(HISTORY_TAG.format(alias=alias)))


def _parse_history(ctx: RegistryContext, alias: str, raw: Optional[str]) -> dict:
    if not raw:
        return {"stack": [], "log": []}
    try:
        data = json.loads(raw)
        history = {"stack": [int(v) for v in data["stack"]], "log": list(data["log"])}
        if data.get("pending"):
            pending = data["pending"]
            history["pending"] = {"entry": dict(pending["entry"]), "stack": [int(v) for v in pending["stack"]]}
            int(history["pending"]["entry"]["version"])
        return history
    except (ValueError, TypeError, KeyError, AttributeError):
        raise AliasHistoryError(f"tag {HISTORY_TAG.format(alias=alias)} of {ctx.model_name!r} is not a valid alias "
                                f"history; fix or delete it before moving alias {alias!r}, so that its rollback "
                                f"stack is not overwritten") from None


def recorded_holder(history: dict) -> Optional[int]:
    """The version the history says holds the alias now (its last move, else the stack's top)."""
    if history["log"]:
        v = history["log"][-1].get("version")
        return None if v is None else int(v)
    return history["stack"][-1] if history["stack"] else None


def check_aliases(ctx: RegistryContext, aliases: Optional[list[str]] = None) -> list[dict]:
    """Find and record alias moves made outside knnclip (see module docstring) for `aliases`
    (default: every alias the model has or had). One registry read when nothing moved.
    Returns the out-of-band entries recorded now. A history that cannot be read is skipped
    with a warning here (moves still refuse it)."""
    try:
        rm = ctx.client.get_registered_model(ctx.model_name)
    except MlflowException as exc:
        if is_missing(exc):
            return []
        raise
    holders = {a: int(v) for a, v in (rm.aliases or {}).items()}
    prefix = HISTORY_TAG.format(alias="")
    names = set(holders) | {k[len(prefix):] for k in (rm.tags or {}) if k.startswith(prefix)}
    suspects = []
    for alias in sorted(names if aliases is None else names & set(aliases)):
        try:
            history = _parse_history(ctx, alias, (rm.tags or {}).get(HISTORY_TAG.format(alias=alias)))
        except AliasHistoryError as exc:
            logger.warning("%s", exc)
            continue
        if holders.get(alias) != recorded_holder(history) or history.get("pending"):
            suspects.append(alias)
    if not suspects:
        return []
    found = []
    with _alias_lock(ctx, f"{ctx.command} (recording an alias move made outside knnclip)"):
        for alias in suspects:
            try:
                entry = _reconcile(ctx, alias, read_history(ctx, alias), ctx.aliases().get(alias))
            except AliasHistoryError as exc:  # made unreadable meanwhile
                logger.warning("%s", exc)
                continue
            if entry:
                found.append(entry)
    return found


def _reconcile(ctx: RegistryContext, alias: str, history: dict, holder: Optional[int]) -> Optional[dict]:
    """Under the lock: when `holder` is not the history's recorded holder, append an
    out-of-band entry (and the holder to the stack), write the history, warn. Returns the
    entry or None. `history` is updated in place. An intent left by an interrupted knnclip
    move is settled first: recorded when the alias did move to its version, else dropped."""
    if _settle_pending(ctx, alias, history, holder):
        return None
    was = recorded_holder(history)
    if holder == was:
        return None
    entry = {"at": _now(), "action": OUT_OF_BAND, "version": holder, "previous": was, "by": "outside knnclip",
             "detected_by": ctx.command, "detected_by_user": _user(),
             "note": f"moved without the gate; found by `{ctx.command}`"}
    if holder is not None and (not history["stack"] or history["stack"][-1] != holder):
        history["stack"].append(holder)
    history["log"].append(entry)
    _write_history(ctx, alias, history)
    logger.warning("alias %r of %r was moved outside knnclip (no gate, no history): %s -> %s; recorded in its "
                   "history now (found by %s)", alias, ctx.model_name, _label(was), _label(holder), ctx.command)
    return {"alias": alias, **entry}


def _settle_pending(ctx: RegistryContext, alias: str, history: dict, holder: Optional[int]) -> bool:
    """Under the lock: settle the intent of an interrupted move (see module docstring). True
    when it was that move that gave `holder` the alias (recorded now), else False."""
    pending = history.pop("pending", None)
    if pending is None:
        return False
    entry = pending["entry"]
    done = holder is not None and holder == int(entry["version"])
    if done:
        history["stack"] = pending["stack"]
        history["log"].append({**entry, "note": (entry.get("note", "") + "; " if entry.get("note") else "")
                               + f"recorded by `{ctx.command}`: the mover was interrupted after moving the alias"})
    _write_history(ctx, alias, history)
    logger.info("alias %r of %r: an interrupted %s to version %s %s", alias, ctx.model_name, entry.get("action"),
                entry["version"], "was recorded" if done else "had not moved it; its intent was dropped")
    return done


def _label(version: Optional[int]) -> str:
    return "no version" if version is None else f"version {version}"


def _write_history(ctx: RegistryContext, alias: str, history: dict) -> None:
    pending = history.get("pending")
    history = {"stack": history["stack"][-MAX_STACK:], "log": history["log"][-MAX_LOG:]}
    if pending:
        history["pending"] = pending
    ctx.client.set_registered_model_tag(ctx.model_name, HISTORY_TAG.format(alias=alias),
                                        json.dumps(history, separators=(",", ":")))
    _write_description(ctx)


HISTORY_HEADING = "### Alias history"
MAX_TABLE_ROWS = 30


def history_table(histories: dict[str, dict]) -> str:
    """Markdown table of the alias moves of `histories` ({alias: read_history()}), newest first."""
    moves = sorted(((e.get("at") or "", alias, e) for alias, h in histories.items() for e in h["log"]),
                   key=lambda t: t[0], reverse=True)
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ") if v not in (None, "") else "-"
    lines = [HISTORY_HEADING, "",
             "Every move of an alias, newest first (knnclip records them; MLflow keeps no alias history). "
             "`knnclip releases history --alias A` shows one alias's moves and its rollback stack.", "",
             "| when (UTC) | alias | action | from | to | by | note |", "|---|---|---|---|---|---|---|"]
    for at, alias, e in moves[:MAX_TABLE_ROWS]:
        lines.append("| " + " | ".join(cell(v) for v in (at.replace("+00:00", ""), alias, e.get("action"),
                                                          e.get("previous"), e.get("version"),
                                                          e.get("by") or e.get("detected_by_user"),
                                                          e.get("note"))) + " |")
    if len(moves) > MAX_TABLE_ROWS:
        lines.append(f"\n({len(moves) - MAX_TABLE_ROWS} older moves in the tags `knnclip.alias_history.*`)")
    return "\n".join(lines)


def _write_description(ctx: RegistryContext) -> None:
    """Rewrite the registered model's description with the alias history table (the text before
    the table is kept). Best effort: a refusal is logged, the tags keep the history."""
    try:
        rm = ctx.client.get_registered_model(ctx.model_name)
        prefix = HISTORY_TAG.split("{")[0]
        histories = {}
        for key, raw in (rm.tags or {}).items():
            if key.startswith(prefix):
                try:
                    histories[key[len(prefix):]] = _parse_history(ctx, key[len(prefix):], raw)
                except AliasHistoryError:
                    continue
        head = (rm.description or "").split(HISTORY_HEADING)[0].rstrip()
        ctx.client.update_registered_model(ctx.model_name, description=(head + "\n\n" + history_table(histories)).strip())
    except MlflowException as exc:
        logger.warning("the description of %s keeps its old alias history table: %s", ctx.model_name, exc)


@contextmanager
def _alias_lock(ctx: RegistryContext, action: str) -> Iterator[None]:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", ctx.model_name)
    with workspace_lock(ctx.ws, f"aliases-{safe}.lock", LOCK_TIMEOUT_S, what=action,
                        guards=f"the aliases of {ctx.model_name!r}"):
        yield


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001
        return "unknown"


def move_alias(ctx: RegistryContext, alias: str, version: int, action: str, note: Optional[str] = None) -> dict:
    """Point `alias` at `version` and record the move. Returns {'alias', 'version', 'previous'}."""
    version = int(version)
    ctx.model_version(version)  # raises ReleaseNotFoundError
    with _alias_lock(ctx, action):
        return _move(ctx, alias, version, action, note)


def _move(ctx: RegistryContext, alias: str, version: int, action: str, note: Optional[str]) -> dict:
    previous = ctx.aliases().get(alias)
    history = read_history(ctx, alias)
    _reconcile(ctx, alias, history, previous)  # a move made outside knnclip is recorded first
    stack = list(history["stack"])
    if not stack or stack[-1] != version:
        stack.append(version)
    entry = {"at": _now(), "action": action, "version": version, "previous": previous,
             "by": _user(), **({"note": note} if note else {})}
    _record_move(ctx, alias, history, entry, stack)
    logger.info("%s: alias %s -> version %s (was %s)", action, alias, version, previous)
    return {"alias": alias, "version": version, "previous": previous}


def _record_move(ctx: RegistryContext, alias: str, history: dict, entry: dict, stack: list[int]) -> None:
    """Under the lock: write the intent, move the alias to entry['version'], then record the
    move (`entry` logged, `stack` the new stack) and clear the intent."""
    history["pending"] = {"entry": entry, "stack": stack}
    _write_history(ctx, alias, history)
    ctx.client.set_registered_model_alias(ctx.model_name, alias, str(entry["version"]))
    history.pop("pending")
    history["stack"] = stack
    history["log"].append(entry)
    _write_history(ctx, alias, history)


def plan_rollback(ctx: RegistryContext, alias: str) -> dict:
    """What `rollback_alias` would do now, after recording any out-of-band move: {'alias',
    'current', 'target', 'stack', 'how_current' (the log entry that gave the current holder
    the alias, or None), 'out_of_band' (entries recorded by this call), 'why'}. Raises
    RollbackError when there is nothing to roll back to."""
    found = check_aliases(ctx, [alias])
    current = ctx.aliases().get(alias)
    history = read_history(ctx, alias)
    stack = list(history["stack"])
    if current is None:
        raise RollbackError(f"alias {alias!r} of {ctx.model_name!r} points at no version, so there is nothing to roll back")
    if not stack or stack[-1] != current:
        stack.append(current)
    if len(stack) < 2:
        raise RollbackError(f"no version held alias {alias!r} before version {current}, so there is nothing to roll back to")
    target = stack[-2]
    how = next((e for e in reversed(history["log"]) if e.get("version") == current), None)
    why = f"version {target} held {alias!r} before version {current}"
    if how:
        why += (f"; version {current} got it by {how['action']} on {how.get('at')}"
                + (f" (found by `{how['detected_by']}`)" if how.get("action") == OUT_OF_BAND else ""))
    return {"alias": alias, "current": current, "target": target, "stack": stack, "how_current": how,
            "out_of_band": found, "why": why}


def rollback_alias(ctx: RegistryContext, alias: str, expect: Optional[tuple[int, int]] = None) -> dict:
    """Give `alias` back to the version that held it before the current one.
    `expect` (current, target) from `plan_rollback`: refuse if the alias moved meanwhile.
    Returns {'alias', 'version', 'previous'}; raises RollbackError when there is none."""
    with _alias_lock(ctx, "rollback"):
        return _rollback(ctx, alias, expect)


def _rollback(ctx: RegistryContext, alias: str, expect: Optional[tuple[int, int]]) -> dict:
    current = ctx.aliases().get(alias)
    if current is None:
        raise RollbackError(f"alias {alias!r} of {ctx.model_name!r} points at no version, so there is nothing to roll back")
    history = read_history(ctx, alias)
    _reconcile(ctx, alias, history, current)  # a move made outside knnclip is recorded first
    stack = history["stack"]
    if not stack or stack[-1] != current:
        stack.append(current)
    earlier = stack[:-1]
    if not earlier:
        raise RollbackError(f"no version held alias {alias!r} before version {current}, so there is nothing to roll back to")
    target = earlier[-1]
    if expect is not None and (current, target) != tuple(expect):
        raise RollbackError(f"alias {alias!r} changed while the rollback waited (now version {current}, whose "
                            f"predecessor is {target}); nothing was done, run the rollback again")
    ctx.model_version(target)
    entry = {"at": _now(), "action": "rollback", "version": target, "previous": current, "by": _user()}
    _record_move(ctx, alias, history, entry, earlier)
    logger.info("rollback: alias %s -> version %s (was %s)", alias, target, current)
    return {"alias": alias, "version": target, "previous": current}
