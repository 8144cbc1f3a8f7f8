"""Alias moves with a durable history, since MLflow keeps none.

Each alias has a registered-model tag `knnclip.alias_history.<alias>` holding JSON
`{"stack": [versions that held it, oldest first], "log": [recent moves]}`. The tag lives
in the MLflow store itself, so the history survives restarts and works with any tracking
URI. `rollback` pops the current holder and gives the alias back to the one before. A move
is a read-modify-write of that tag, so moves of one model's aliases take a workspace lock:
two processes on this machine cannot lose each other's history entries (processes on other
machines sharing a remote tracking server are not covered). A history that cannot be
read raises AliasHistoryError and the alias is not moved, so it is never overwritten.
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
    tag = HISTORY_TAG.format(alias=alias)
    raw = (rm.tags or {}).get(tag)
    if not raw:
        return {"stack": [], "log": []}
    try:
        data = json.loads(raw)
        return {"stack": [int(v) for v in data["stack"]], "log": list(data["log"])}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise AliasHistoryError(f"tag {tag} of {ctx.model_name!r} is not a valid alias history; fix or delete it "
                                f"before moving alias {alias!r}, so that its rollback stack is not overwritten") from None


def _write_history(ctx: RegistryContext, alias: str, history: dict) -> None:
    history = {"stack": history["stack"][-MAX_STACK:], "log": history["log"][-MAX_LOG:]}
    ctx.client.set_registered_model_tag(ctx.model_name, HISTORY_TAG.format(alias=alias),
                                        json.dumps(history, separators=(",", ":")))


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
    stack = history["stack"]
    if previous is not None and (not stack or stack[-1] != previous):
        stack.append(previous)  # moved outside knnclip: keep the holder we found
    ctx.client.set_registered_model_alias(ctx.model_name, alias, str(version))
    if not stack or stack[-1] != version:
        stack.append(version)
    history["log"].append({"at": _now(), "action": action, "version": version, "previous": previous,
                           "by": _user(), **({"note": note} if note else {})})
    _write_history(ctx, alias, history)
    logger.info("%s: alias %s -> version %s (was %s)", action, alias, version, previous)
    return {"alias": alias, "version": version, "previous": previous}


def rollback_alias(ctx: RegistryContext, alias: str) -> dict:
    """Give `alias` back to the version that held it before the current one.
    Returns {'alias', 'version', 'previous'}; raises RollbackError when there is none."""
    with _alias_lock(ctx, "rollback"):
        return _rollback(ctx, alias)


def _rollback(ctx: RegistryContext, alias: str) -> dict:
    current = ctx.aliases().get(alias)
    if current is None:
        raise RollbackError(f"alias {alias!r} of {ctx.model_name!r} points at no version, so there is nothing to roll back")
    history = read_history(ctx, alias)
    stack = history["stack"]
    if not stack or stack[-1] != current:
        stack.append(current)
    earlier = stack[:-1]
    if not earlier:
        raise RollbackError(f"no version held alias {alias!r} before version {current}, so there is nothing to roll back to")
    target = earlier[-1]
    ctx.model_version(target)
    ctx.client.set_registered_model_alias(ctx.model_name, alias, str(target))
    history["stack"] = earlier
    history["log"].append({"at": _now(), "action": "rollback", "version": target, "previous": current, "by": _user()})
    _write_history(ctx, alias, history)
    logger.info("rollback: alias %s -> version %s (was %s)", alias, target, current)
    return {"alias": alias, "version": target, "previous": current}
