"""Prefect flows of the labelling loop: export the captured segments as annotation tasks,
and import corrected labels (then the usual embed -> curate -> publish flows apply).
Thin: one task per library call (knnclip_core.labelling)."""
from __future__ import annotations

from typing import Optional

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.pipeline import _settings_dict
from flows.tasks import IO_RETRIES, settings_of


@task(name="label-export", **IO_RETRIES)
def label_export_task(settings: dict, tool: str, out: str, limit: Optional[int], shape: str) -> dict:
    from knnclip_core.cli.label_cmd import export_tasks

    return export_tasks(settings_of(settings), tool, out, limit=limit, shape=shape)


@task(name="label-import", **IO_RETRIES)
def label_import_task(settings: dict, path: str, tool: str, release: Optional[str]) -> dict:
    from knnclip_core.labelling.importer import import_corrections

    return import_corrections(settings_of(settings), path, tool, release=release)


@flow(name="knnclip-label-export", persist_result=False)
def label_export_flow(out: str, tool: str = "label-studio", limit: Optional[int] = None, shape: str = "brush",
                      settings: Optional[dict] = None) -> dict:
    """Write the capture store as a `tool` task set (label-studio | cvat | coco) into `out`."""
    res = label_export_task(_settings_dict(settings), tool, out, limit, shape)
    create_markdown_artifact(key="label-export", markdown=(
        f"**{res['tasks']} tasks** ({res['proposals']} proposed masks, {res['vocabulary']} classes) for "
        f"{res['tool']} in `{res['out']}`: {', '.join(res['files'])}"))
    return res


@flow(name="knnclip-label-import", persist_result=False)
def label_import_flow(path: str, tool: str = "label-studio", release: Optional[str] = None,
                      settings: Optional[dict] = None) -> dict:
    """Ingest corrected annotations (validated and quarantined like any ingest)."""
    res = label_import_task(_settings_dict(settings), path, tool, release)
    c = res["correction"]
    create_markdown_artifact(key="label-import", markdown=(
        f"batch `{res['batch_id']}`: {res['segments']} segments from {c['tool']} ({len(c['tasks'])} tasks, "
        f"correcting release {', '.join(c['releases']) or 'unknown'}); quarantined {res['quarantined']}"))
    return res
