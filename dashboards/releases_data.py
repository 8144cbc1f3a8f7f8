"""What the releases page shows, as JSON-ready dicts: registered versions, where each alias
points, the alias histories, and the diff of two releases (all read from MLflow through
registry/). A workspace without an MLflow store yet gives empty lists, without creating one.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from knnclip_core.config import Settings
from knnclip_core.errors import KnnclipError
from knnclip_core.redact import redact_obj, redact_text
from knnclip_core.workspace import Workspace

from .data import sqlite_missing

logger = logging.getLogger(__name__)

KNOWN_ALIASES = ("production", "staging")


def registry_exists(ws: Workspace) -> bool:
    """False when no MLflow store has been written yet (default SQLite file absent)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return True
    return not sqlite_missing(f"sqlite:///{ws.mlflow_dir / 'mlflow.db'}")


def open_context(settings: Settings, ws: Optional[Workspace] = None):
    """RegistryContext on the configured store, or None when there is no store yet."""
    ws = ws or Workspace.from_settings(settings)
    if not registry_exists(ws):
        return None
    from registry.store import open_registry

    return open_registry(settings, ws, command="dashboard")


def releases_overview(settings: Settings, ws: Optional[Workspace] = None) -> dict:
    """{'model_name', 'releases': [list_releases rows, newest first, each with its 'quality'],
    'aliases': {alias: version}, 'alias_history': {alias: {'stack', 'log' (newest first)}} for
    production, staging and any other alias, 'quality_history': registry.eval_runs.quality_history
    (quality across versions on one evaluation set, with its 'label' and 'other_sets' lines: figures
    of other sets are listed apart, never on one chart), 'error': message or None}."""
    out: dict = {"model_name": settings.publish.model_name, "releases": [], "aliases": {},
                 "alias_history": {a: {"stack": [], "log": []} for a in KNOWN_ALIASES},
                 "quality_history": {"dataset": None, "points": []}, "error": None}
    try:
        ctx = open_context(settings, ws)
        if ctx is None:
            return out
        from registry.aliases import read_history
        from registry.eval_runs import quality_history
        from registry.releases import list_releases

        out["releases"] = sorted(list_releases(ctx), key=lambda r: -r["version"])
        out["quality_history"] = quality_history(ctx)
        from registry.eval_runs import other_sets_lines, set_label

        hist = out["quality_history"]
        hist["label"], hist["other_sets"] = set_label(hist["dataset"], hist.get("eval_set")), other_sets_lines(hist)
        out["aliases"] = dict(sorted(ctx.aliases().items()))
        for alias in dict.fromkeys([*KNOWN_ALIASES, *out["aliases"]]):
            hist = read_history(ctx, alias)
            out["alias_history"][alias] = {"stack": hist["stack"], "log": list(reversed(hist["log"]))}
    except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
        logger.exception("registry unreadable")
        out["error"] = redact_text(str(exc) or type(exc).__name__)
    return redact_obj(out)  # no credential of a URL setting reaches a page


def release_diff(settings: Settings, a: str, b: str, ws: Optional[Workspace] = None) -> dict:
    """registry.releases.diff_releases of refs `a` and `b` (versions or aliases).
    Raises KnnclipError (ReleaseNotFoundError) when either does not exist or there are no releases."""
    ctx = open_context(settings, ws)
    if ctx is None:
        raise KnnclipError("there are no releases yet; publish one with `knnclip publish`.")
    from registry.releases import diff_releases

    try:
        return redact_obj(diff_releases(ctx, a, b))
    except KnnclipError as exc:
        exc.args = (redact_text(exc),)
        raise


def move_alias(settings: Settings, action: str, alias: str, version: Optional[str] = None,
               ws: Optional[Workspace] = None) -> dict:
    """Promote `version` to `alias` through the quality gate (registry.releases.promote, as
    `knnclip releases promote` without --force) or roll `alias` back (registry.releases.rollback).
    Returns their result; raises KnnclipError (no registry, unknown version, gate refused,
    nothing to roll back to)."""
    ctx = open_context(settings, ws)
    if ctx is None:
        raise KnnclipError("there are no releases yet; publish one with `knnclip publish`.")
    from registry.releases import promote, rollback

    try:
        return redact_obj(promote(ctx, version, alias=alias) if action == "promote" else rollback(ctx, alias=alias))
    except KnnclipError as exc:
        exc.args = (redact_text(exc),)
        raise
