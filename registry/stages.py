"""The registry's stages in the one shape `stage(settings, ws, **asked) -> Result`: publish
and promote. `settings` carries the overrides already (`publish.alias`, `publish.index`,
applied once at the edge by knnclip_core.overrides); `asked` is only what is not a setting."""
from __future__ import annotations

import logging
from typing import Optional

from knnclip_core.config import Settings
from knnclip_core.redact import redact_url
from knnclip_core.stages.results import PromoteResult, PublishResult
from knnclip_core.workspace import Workspace

logger = logging.getLogger(__name__)


def publish(settings: Settings, ws: Workspace, *, backbone: Optional[str] = None,
            tag: Optional[str] = None) -> PublishResult:
    """Publish the kept memory of `backbone` (at LanceDB tag `tag`, default the latest curation)
    as a release with alias `settings.publish.alias` ('' for none) and index choice
    `settings.publish.index`; the result names where its MLflow run lives (password-free)."""
    from .publish import publish as publish_memory
    from .store import open_registry

    release = publish_memory(settings, ws, backbone=backbone, tag=tag)
    ctx = open_registry(settings, ws, command="publish")
    experiment = ctx.client.get_run(release["run_id"]).info.experiment_id if release.get("run_id") else None
    return PublishResult.from_json({**release, "tracking_uri": redact_url(ctx.tracking_uri),
                                    "experiment_id": experiment})


def promote(settings: Settings, ws: Workspace, *, version: str | int, alias: str = "production",
            force: bool = False) -> PromoteResult:
    """Point `alias` at release `version` (a number or an alias) through the quality gate
    (registry.releases.promote: its refusals are raised as they are)."""
    from .releases import promote as promote_release
    from .store import open_registry

    moved = promote_release(open_registry(settings, ws, command="promote"), version, alias=alias, force=force)
    return PromoteResult(status="promoted", alias=moved["alias"], version=moved["version"],
                         previous=moved.get("previous"), gate=moved.get("gate") or {},
                         changed=bool(moved.get("changed")))
